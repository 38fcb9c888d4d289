"""Scenario 7, service half: bad messages and junk events against the running services. No
service crashes or stops processing valid messages; each invalid message gets its specific
error (documents: test_bad_input_documents.py)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from pydantic import ConfigDict, ValidationError

from tests.faults import strategies as bad
from tests.faults.conftest import OpenScenario
from tests.faults.examples import draw_examples, fate
from tests.faults.outbox import read_outbox
from tests.faults.schedule import document, make_message, make_schedule
from tests.faults.stack import Heartbeats
from wasched.common.clock import format_utc
from wasched.common.events import CancelRequest, DueMessage, Event, ScheduleRequest, SendRequest
from wasched.common.requests import NoAnswer, request
from wasched.common.topology import (
    CANCEL,
    DUE,
    FIRE,
    OUTCOME,
    RECEIPT,
    SCHEDULE,
    SEND,
)

Message = dict[str, Any]
UNTOUCHED = ("untouched", None)


def _variant(base: Message, tag: str, **changes: Any) -> Message:
    message = {**base, "id": f"{tag}_{base['id']}", **changes}
    return {k: v for k, v in message.items() if v is not _DROP}


_DROP = object()


def catalogue(good: Message, now: datetime) -> list[tuple[Message, tuple[str, str | None]]]:
    """Hand-picked bad messages and how each must end."""
    failed = ("failed", "validation")
    cases: list[tuple[Message, tuple[str, str | None]]] = [
        (_variant(good, "empty-to", to=""), failed),
        (_variant(good, "name-as-to", to="Reem"), ("failed", "invalid_recipient")),
        (_variant(good, "short-number", to="+44 79"), ("failed", "invalid_recipient")),
        (_variant(good, "int-to", to=447957189696), failed),
        (_variant(good, "huge-text", message="🎂" * 70_000), failed),
        (_variant(good, "no-text", message=_DROP), failed),
        (_variant(good, "words-time", scheduledTime="next tuesday"), failed),
        (_variant(good, "naive-time", scheduledTime="2026-11-29T10:00:00"), failed),
        (_variant(good, "feb-30", scheduledTime="2026-02-30T10:00:00Z"), failed),
        (_variant(good, "number-time", scheduledTime=1735030800), failed),
        (_variant(good, "year-9999", scheduledTime="9999-12-31T23:59:59-01:00"), failed),
        # outside the storable years (1000–9999): refused by name rather than guessed at
        (_variant(good, "year-1", scheduledTime="0001-01-01T00:00:00Z"), failed),
        (
            _variant(good, "expires-first", expiresAt=format_utc(now - timedelta(seconds=1))),
            ("expired", "expired"),
        ),
        (_variant(good, "odd-unicode", message="\u202e👩‍👩‍👧‍👦 e\u0301 \u200b"), ("sent", None)),
        (_variant(good, "upper-status", status="PENDING"), UNTOUCHED),
        (_variant(good, "int-status", status=42), UNTOUCHED),
        (_variant(good, "no-id", id=_DROP), UNTOUCHED),
    ]
    return cases


def duplicates(good: list[Message]) -> list[Message]:
    """A repeated id, and a repeat whose internal key (`id#1`) is also a real message's id."""
    first = {**good[0], "id": f"dup_{good[0]['id']}"}
    again = {**good[1], "id": first["id"]}
    clash = {**good[2], "id": f"clash_{good[2]['id']}"}
    clash_again = {**good[3], "id": clash["id"]}
    literal = {**good[4], "id": f"{clash['id']}#1"}
    return [first, again, clash, clash_again, literal]


@pytest.mark.timeout(300)
async def test_bad_messages_fail_alone_and_good_ones_are_sent(
    open_scenario: OpenScenario,
) -> None:
    scenario = await open_scenario("7 bad messages")
    stack = scenario.stack
    now = await scenario.start("poller", "sender")
    start = now + timedelta(seconds=3)
    good = make_schedule(60, start, 10, scenario.rng)
    spares = make_schedule(5, start, 10, scenario.rng, tag="d")
    cases = catalogue(make_message(0, start, scenario.rng, tag="bad"), now)
    junk = [
        {**raw, "id": f"junk{i}", "status": "pending"}
        for i, raw in enumerate(draw_examples(bad.messages(), 40, scenario.seed))
    ]
    dups = duplicates(spares)
    messages = good + [m for m, _ in cases] + junk + dups
    scenario.seed_document(good)
    stack.doc.put(document(copy.deepcopy(messages)))

    scenario.outcomes = _expected_outcomes(cases, junk, dups, now)
    scenario.must_send |= {i for i, want in scenario.outcomes.items() if want == ("sent", None)}
    scenario.repeated = {dups[0]["id"], dups[2]["id"]}
    scenario.known = {m["id"] for m in messages if isinstance(m.get("id"), str)}
    verdict = await scenario.finish(timeout=120)

    stored = stack.doc.get()["messages"]
    untouched = [m for m, (_, want) in zip(messages[60:], cases, strict=False) if want == UNTOUCHED]
    verdict.problems += [
        f"a message wasched must not touch was changed: {m}" for m in untouched if m not in stored
    ]
    verdict.problems += _duplicate_problems(stored, dups)
    ended = {m.get("id"): (m.get("status"), m.get("errorKind")) for m in reversed(stored)}
    right = [
        i
        for i, (st, kind) in scenario.outcomes.items()
        if ended.get(i, (None, None))[0] == st and kind in (None, ended[i][1])
    ]
    wanted = len(scenario.outcomes)
    scenario.expect(
        f"of {wanted} bad or odd messages, ending as expected", len(right), "==", wanted
    )
    must = scenario.must_send
    scenario.expect(
        f"of {len(must)} that must be sent, sent", len(must & scenario.sent_ids()), "==", len(must)
    )
    scenario.assert_ok()


def _expected_outcomes(
    cases: list[tuple[Message, tuple[str, str | None]]],
    junk: list[Message],
    dups: list[Message],
    now: datetime,
) -> dict[str, tuple[str, str | None]]:
    outcomes = {m["id"]: want for m, want in cases if want != UNTOUCHED}
    for raw in junk:
        want = fate(raw, now)
        if want is not None and want[0] != "pending":
            outcomes[raw["id"]] = want
    outcomes[dups[0]["id"]] = ("sent", None)  # the first of a repeated id is sent
    outcomes[dups[2]["id"]] = ("sent", None)
    outcomes[dups[4]["id"]] = ("sent", None)  # a real message whose id looks like a repeat's key
    return outcomes


def _duplicate_problems(stored: list[Message], dups: list[Message]) -> list[str]:
    """The second message of a repeated id fails (validation) and the first keeps its send."""
    problems = []
    for ident in (dups[0]["id"], dups[2]["id"]):
        copies = [m for m in stored if m.get("id") == ident]
        if len(copies) != 2:
            problems.append(f"{ident}: {len(copies)} messages with this id, expected 2")
            continue
        second = copies[1]
        if (second.get("status"), second.get("errorKind")) != ("failed", "validation"):
            problems.append(
                f"{ident} (repeat): ended {second.get('status')}/{second.get('errorKind')}, "
                "expected failed/validation"
            )
    return problems


INBOUND_SUBJECTS = [DUE, SEND, SCHEDULE, CANCEL, OUTCOME, RECEIPT, FIRE]
GOOD = 60
POISON_TIME = "9999-12-31T23:59:59-01:00"


@pytest.mark.timeout(300)
async def test_junk_on_every_subject_does_not_stop_the_services(
    open_scenario: OpenScenario,
) -> None:
    scenario = await open_scenario("7 junk events")
    stack, beats, nc, js = scenario.stack, scenario.beats, scenario.nc, scenario.nc.jetstream()
    ready = await scenario.start("poller", "sender")
    scenario.seed_document(make_schedule(GOOD, ready + timedelta(seconds=5), 15, scenario.rng))

    payloads = [  # a bigger one never leaves the client (MaxPayloadError): no service sees it
        p
        for p in draw_examples(bad.event_payloads(), 25, scenario.seed)
        if len(p) <= nc.max_payload
    ]
    for subject in INBOUND_SUBJECTS:
        for payload in payloads:
            await js.publish(subject, payload)
    answers = await _ask_bad_requests(nc)
    sendable, without_id = _may_be_sent(payloads)
    scenario.raced = sendable  # valid due/send payloads are sent (at most once each)
    scenario.known = _may_be_scheduled(payloads)  # the poller adds valid schedule requests
    scenario.foreign_prefixes = ("send-",)  # ids the sender gives send requests without one
    scenario.notes.append(f"{len(payloads) * len(INBOUND_SUBJECTS)} junk events published")
    verdict = await scenario.finish(timeout=120)

    verdict.problems += [f"request {what}: {answer}" for what, answer in answers if answer]
    verdict.problems += _uncounted(beats)
    generated = [i for i in read_outbox(stack.outbox).ids() if i.startswith("send-")]
    if len(generated) > without_id:
        verdict.problems.append(f"{len(generated)} sends with generated ids, {without_id} asked")
    good_sent = len(scenario.must_send & scenario.sent_ids())
    scenario.expect(f"of {GOOD} good messages, sent", good_sent, "==", GOOD)
    scenario.assert_ok()


async def _ask_bad_requests(nc: NATS) -> list[tuple[str, str | None]]:
    """Request-reply callers get `{ok: false, error}`; returns (what, problem or None)."""
    base = {k: bad.GOOD_MESSAGE[k] for k in ("to", "message", "scheduledTime")}
    asks: list[tuple[str, str, Event]] = [
        ("schedule without id", SCHEDULE, _raw_event({**base})),
        (
            "schedule at year 9999-",
            SCHEDULE,
            _raw_event({**base, "id": "y9", "scheduledTime": POISON_TIME}),
        ),
        ("cancel of an unknown id", CANCEL, CancelRequest(id="no-such-message")),
        ("send to a name", SEND, SendRequest(id="to-a-name", to="Reem", message="hi")),
    ]
    results = []
    for what, subject, event in asks:
        try:
            answer = await request(nc, subject, event, msg_id=None, timeout=15)
        except NoAnswer as exc:
            results.append((what, f"no answer ({exc})"))
            continue
        bad_answer = answer.ok or not (answer.error or "").strip()
        results.append(
            (what, f"expected ok=false with an error, got {answer}" if bad_answer else None)
        )
    return results


class _RawEvent(Event):
    model_config = ConfigDict(extra="allow")


def _raw_event(data: dict[str, Any]) -> Event:
    """Any JSON object as an event, to send what a careless caller would."""
    return _RawEvent.model_validate(data)


def _may_be_sent(payloads: list[bytes]) -> tuple[set[str], int]:
    """Ids of the valid due/send payloads, and how many valid send requests had no id."""
    ids: set[str] = set()
    without_id = 0
    for payload in payloads:
        for model in (DueMessage, SendRequest):
            try:
                event = model.model_validate_json(payload)
            except ValidationError:
                continue
            if event.id:
                ids.add(event.id)
            else:
                without_id += 1
    return ids, without_id


def _may_be_scheduled(payloads: list[bytes]) -> set[str]:
    """Ids of the payloads that are valid schedule requests (the poller may store them)."""
    ids = set()
    for payload in payloads:
        try:
            ids.add(ScheduleRequest.model_validate_json(payload).id)
        except ValidationError:
            continue
    return ids


def _uncounted(beats: Heartbeats) -> list[str]:
    """Rejected junk is counted in the heartbeats (and so in the metrics)."""
    poller = (beats.seen.get("poller") or [(0.0, {})])[-1][1].get("rejectedEvents", {})
    sender = (beats.seen.get("sender") or [(0.0, {})])[-1][1].get("rejectedEvents", {})
    problems = []
    for subject, counts in ((SCHEDULE, poller), (OUTCOME, poller), (DUE, sender), (SEND, sender)):
        if not counts.get(subject):
            problems.append(f"no rejected events counted on {subject}: {counts}")
    return problems
