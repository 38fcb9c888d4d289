"""Scenario 12: a series every 5 s, with the poller and the sender SIGKILLed and restarted
while it runs, each kill shortly before an occurrence so that the occurrence falls due
while the process is down: each occurrence is sent once, on time (late only around a
restart), none missed, and the document shows `nextAt`, `lastSentAt` and the history.

Occurrence ids (`<series id>@<UTC instant>`) are what reaches the outbox; the checker
sees each occurrence as a record built from the ledger and the series' entry
(tests/faults/series.py) and holds the entry to them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.outbox import read_outbox
from tests.faults.scenario import Scenario, sized
from tests.faults.schedule import make_message
from tests.faults.stack import Disruption, wait_up
from wasched.common.clock import format_utc, parse_utc, utcnow
from wasched.common.recurrence import parse_occurrence_id

PERIOD = timedelta(seconds=5)
OCCURRENCES = sized(18, 72)
KILLS = sized(2, 8)
"""Of the poller, and as many of the sender."""
LEAD = timedelta(seconds=6)
ON_TIME_SECONDS = 2.0
"""How late an occurrence may be when no restart is near its time (fire → poller → sender)."""
RESTART_SECONDS = 30.0
"""An occurrence due this long after a kill may wait for the restart."""
LEADS = {"poller": (0.2, 1.5), "sender": (0.05, 0.3)}
"""How long before an occurrence each is killed: less than it takes to be back (a poller
waits 3 s for the lease; a sender restarts in about a second)."""


@pytest.mark.timeout(sized(360, 1200))
async def test_a_series_every_5s_sends_each_occurrence_once_on_time_across_kills(
    open_scenario: OpenScenario,
) -> None:
    scenario = await open_scenario("12 series every 5 s, SIGKILLs", crash_targets=("sender",))
    ready = await scenario.start("poller", "sender")
    first = (ready + LEAD).replace(microsecond=0)
    series = make_message(0, first, scenario.rng, tag="every5s")
    series["repeat"] = f"FREQ=SECONDLY;INTERVAL=5;COUNT={OCCURRENCES}"
    ident = series["id"]
    scenario.seed_document([series], must_send=False)
    scenario.series[ident] = [first + n * PERIOD for n in range(OCCURRENCES)]

    watching = asyncio.create_task(watch_the_entry(scenario, ident, first))
    for name in ("poller", "sender"):  # one after the other, while the series runs
        await kill_before_occurrences(scenario, name, scenario.series[ident])
    shown = await watching
    verdict = await scenario.finish(timeout=sized(180, 600))

    sends = [s for s in read_outbox(scenario.stack.outbox).sends if s.id.startswith(ident)]
    events = scenario.stack.timeline.events
    kills = [e.start for e in events]
    late = [s for s in sends if late_without_excuse(s.id, s.at, kills)]
    down = [at for at in scenario.series[ident] if any(fell_in(at, e) for e in events)]
    scenario.expect("SIGKILLs (poller + sender)", len(kills), "==", 2 * KILLS)
    scenario.expect("occurrences due while a process was down", len(down), ">=", 2 * KILLS)
    scenario.expect(
        f"of {OCCURRENCES} occurrences, sent", len(sends), "==", OCCURRENCES - verdict.interrupted
    )
    scenario.expect(f"sent > {ON_TIME_SECONDS:g} s late, no restart near", len(late), "==", 0)
    scenario.expect("entry showed nextAt and lastSentAt while running", shown, "==", 1)
    scenario.assert_ok()


async def kill_before_occurrences(scenario: Scenario, name: str, instants: list[datetime]) -> None:
    """SIGKILL `name` a moment (`LEADS`, drawn from the seed) before an occurrence, restart it, wait
    until it is up: the occurrence falls due while it is down. Exactly `KILLS` times."""
    stack = scenario.stack
    for _ in range(KILLS):
        lead = scenario.rng.uniform(*LEADS[name])
        soon = utcnow() + timedelta(seconds=scenario.rng.uniform(2.0, 6.0) + lead)
        target = next((at for at in instants if at >= soon), None)
        assert target is not None, "the series ended before its kills: more occurrences"
        await asyncio.sleep((target - utcnow()).total_seconds() - lead)
        event = stack.kill(name, "sigkill@before-occurrence")
        restarted = time.time()
        stack.start(name)
        await wait_up(stack, scenario.beats, name, after=restarted)
        event.finish()


def fell_in(at: datetime, event: Disruption) -> bool:
    return event.start <= at.timestamp() <= (event.end or event.start)


def late_without_excuse(ident: str, sent: datetime | None, kills: list[float]) -> bool:
    found = parse_occurrence_id(ident)
    if found is None or sent is None:
        return False
    due = found[1]
    if (sent - due).total_seconds() <= ON_TIME_SECONDS:
        return False
    near = [k for k in kills if -ON_TIME_SECONDS <= due.timestamp() - k <= RESTART_SECONDS]
    return not near


async def watch_the_entry(scenario: Scenario, ident: str, first: datetime) -> int:
    """1 once the entry, mid-series, shows a `lastSentAt` and a later `nextAt` that is one of
    the series' occurrences; 0 if that was never seen before the series' end."""
    end = first + OCCURRENCES * PERIOD
    while utcnow() < end:
        doc = await asyncio.to_thread(scenario.stack.doc.try_get)
        entry = next((m for m in (doc or {}).get("messages", []) if m.get("id") == ident), {})
        if entry.get("lastSentAt") and entry.get("nextAt") and entry.get("history"):
            next_at = parse_utc(entry["nextAt"])
            aligned = (next_at - first) % PERIOD == timedelta(0)
            if aligned and next_at > parse_utc(entry["lastSentAt"]) - PERIOD:
                return 1
            scenario.problems.append(f"{ident}: nextAt {entry['nextAt']} is no occurrence")
            return 0
        await asyncio.sleep(0.5)
    scenario.problems.append(f"{ident}: no nextAt/lastSentAt/history seen before {format_utc(end)}")
    return 0
