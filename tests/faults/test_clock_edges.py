"""Scenario 8: clock edge cases. Messages exactly at the schedule horizon and at one instant,
late by seconds and by days (around MAX_LATENESS_SECONDS), far in the future, written with
odd offsets, and on the DST change days of the display zone (Europe/London)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.outbox import read_outbox
from tests.faults.schedule import Message, make_message
from tests.faults.stack import Stack
from wasched.common.clock import format_utc, parse_utc, utcnow

POLL_SECONDS = 10
"""Long enough that a message sent by polling instead of by its schedule shows as late."""
HORIZON_SECONDS = 20
ON_TIME_SECONDS = 2.0
"""Generous for two shared cores (a burst of 20 sends takes ~1 s); polling would be ~10 s."""
DAY = 86_400
SENT = ("sent", None)
EXPIRED = ("expired", "expired")


def _at(rng: random.Random, tag: str, when: datetime | str, **extra: object) -> Message:
    message = make_message(0, utcnow(), rng, tag=tag)
    message["scheduledTime"] = when if isinstance(when, str) else format_utc(when)
    message.update(extra)
    return message


def on_time(rng: random.Random, t0: datetime) -> list[Message]:
    """Future messages (t0: the latest the first poll can see them): each must go within
    `ON_TIME_SECONDS` of its time, never before, however far within or beyond the horizon
    the poll that first saw it was."""
    burst = t0 + timedelta(seconds=9)
    same = t0 + timedelta(seconds=13)
    messages = [_at(rng, f"burst{i}-", burst) for i in range(20)]
    for seconds in (HORIZON_SECONDS - 0.001, HORIZON_SECONDS, HORIZON_SECONDS + 0.001, 26):
        messages.append(_at(rng, f"horizon{seconds}-", t0 + timedelta(seconds=seconds)))
    for minutes in (0, 345, -210, 840):  # Z, +05:45, -03:30, +14:00: one instant
        zone = timezone(timedelta(minutes=minutes))
        messages.append(_at(rng, f"offset{minutes}-", same.astimezone(zone).isoformat()))
    micro = (t0 + timedelta(seconds=11)).replace(microsecond=123456)
    messages.append(_at(rng, "micro-", micro.isoformat().replace("+00:00", "Z")))
    return messages


def settled(rng: random.Random, t0: datetime) -> list[tuple[Message, tuple[str, str | None]]]:
    """Past, expiring and DST-day messages, with how each must end."""
    ago = [(0, SENT), (5, SENT), (3600, SENT), (DAY - 120, SENT), (DAY + 5, EXPIRED)]
    cases = [(_at(rng, f"ago{s}-", t0 - timedelta(seconds=s)), want) for s, want in ago]
    cases.append((_at(rng, "days3-", t0 - timedelta(days=3)), EXPIRED))
    expires = format_utc(t0 + timedelta(seconds=2))
    cases.append((_at(rng, "expires-", t0 + timedelta(seconds=6), expiresAt=expires), EXPIRED))
    for when in (  # 01:30 London wall time twice (autumn), and in the spring gap
        "2026-10-25T01:30:00+01:00",
        "2026-10-25T01:30:00+00:00",
        "2026-03-29T01:30:00+00:00",
    ):
        cases.append((_at(rng, "dst-past-", when), EXPIRED))
    return cases


def far_future(rng: random.Random) -> list[Message]:
    times = ["2099-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2027-03-28T00:59:59Z"]
    times.append("2027-10-31T01:30:00+01:00")
    return [_at(rng, "future-", when) for when in times]


@pytest.mark.timeout(240)
async def test_clock_edges(open_scenario: OpenScenario) -> None:
    env = {"POLL_INTERVAL_SECONDS": POLL_SECONDS, "SCHEDULE_HORIZON_SECONDS": HORIZON_SECONDS}
    scenario = await open_scenario("8 clock edges", env=env)
    ready = await scenario.start("poller", "sender")
    # the poll that first sees the document comes within one interval of seeding it
    t0 = ready + timedelta(seconds=POLL_SECONDS)
    timely = on_time(scenario.rng, t0)
    cases = settled(scenario.rng, ready)
    later = far_future(scenario.rng)
    scenario.seed_document([*timely, *(m for m, _ in cases), *later], must_send=False)
    scenario.outcomes = {m["id"]: SENT for m in timely} | {m["id"]: w for m, w in cases}
    scenario.must_send = {i for i, want in scenario.outcomes.items() if want == SENT}
    scenario.allow_pending = {m["id"] for m in later}
    scenario.never_sent = {m["id"] for m in later}

    verdict = await scenario.finish(timeout=120)

    lateness = _lateness(scenario.stack, timely)
    verdict.problems += [
        f"{ident}: sent {late:.3f}s after its time (more than {ON_TIME_SECONDS}s)"
        for ident, late in lateness.items()
        if late > ON_TIME_SECONDS
    ]
    verdict.problems += _still_pending(scenario.stack, later)
    scenario.expect(
        "on-time messages: max lateness (s)",
        round(max(lateness.values(), default=0), 2),
        "<=",
        ON_TIME_SECONDS,
    )
    scenario.expect("on-time messages sent", len(lateness), "==", len(timely))
    scenario.expect(
        "far-future messages still pending",
        len(later) - len(_still_pending(scenario.stack, later)),
        "==",
        len(later),
    )
    scenario.assert_ok()


def _lateness(stack: Stack, timely: list[Message]) -> dict[str, float]:
    sends = read_outbox(stack.outbox).by_id()
    found = {}
    for message in timely:
        send = sends.get(message["id"])
        if send is not None and send.at is not None:
            late = send.at - parse_utc(message["scheduledTime"])
            found[message["id"]] = late.total_seconds()
    return found


def _still_pending(stack: Stack, later: list[Message]) -> list[str]:
    stored = {m.get("id"): m for m in stack.doc.get()["messages"]}
    return [
        f"{m['id']} ({m['scheduledTime']}): {stored.get(m['id'], {}).get('status')}, not pending"
        for m in later
        if stored.get(m["id"], {}).get("status") != "pending"
    ]
