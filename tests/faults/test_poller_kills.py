"""Scenario 2: SIGKILL the poller mid-cycle and mid-write, N times, restarting it each time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.scenario import sized
from tests.faults.schedule import make_schedule
from tests.faults.stack import kill_repeatedly

MESSAGES = sized(250, 1000)
WINDOW_SECONDS = sized(30, 120)
"""Each poller restart costs ~5–8 s (start-up plus the 3 s lease), so the run is longer."""
KILLS = sized(6, 30)
LEAD_SECONDS = 3.0
AIMS = {
    "random": None,
    "mid-cycle": r"loaded \d+ messages",  # the cycle has read S3 and is dispatching
    "after-write": r"saved \d+ outcome",  # S3 written, NATS ack not yet sent
    "mid-dispatch": r"→ wasched\.due",
}


@pytest.mark.timeout(sized(300, 1500))
async def test_poller_killed_mid_cycle_and_mid_write_loses_nothing(
    open_scenario: OpenScenario,
) -> None:
    # a poller crash cannot interrupt a send: any `interrupted` outcome is a defect
    scenario = await open_scenario("2 poller SIGKILL")
    ready = await scenario.start("poller", "sender")
    start = ready + timedelta(seconds=LEAD_SECONDS)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await kill_repeatedly(
        scenario.stack,
        "poller",
        scenario.rng,
        kills=KILLS,
        gap=(0.3, 2.0),
        beats=scenario.beats,
        aims=AIMS,
        wait_seconds=5,
    )
    verdict = await scenario.finish(timeout=sized(120, 600))

    scenario.expect(
        "SIGKILLs of the poller", sum(scenario.stack.timeline.kills().values()), "==", KILLS
    )
    scenario.expect(f"of {MESSAGES}, sent", verdict.statuses["sent"], "==", MESSAGES)
    scenario.expect("interrupted sends", verdict.interrupted, "==", 0)
    scenario.assert_ok()
