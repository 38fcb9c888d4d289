"""Scenario 1: SIGKILL the sender at random moments and mid-send, N times, restarting it each time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.scenario import sized, still_claimed
from tests.faults.schedule import make_schedule
from tests.faults.stack import kill_repeatedly

MESSAGES = sized(300, 1200)
WINDOW_SECONDS = sized(25, 100)
KILLS = sized(8, 40)
LEAD_SECONDS = 3.0
"""The first message is due this long after the services are ready."""
AIMS = {"random": None, "mid-send": r"DRYRUN_SEND_DELAY_SECONDS: holding (\S+) for"}


@pytest.mark.timeout(sized(300, 1500))
async def test_sender_killed_mid_send_never_sends_twice_and_loses_nothing(
    open_scenario: OpenScenario,
) -> None:
    # each send is held 50 ms after its outbox line, so kills land between hand-over and outcome
    scenario = await open_scenario(
        "1 sender SIGKILL", env={"DRYRUN_SEND_DELAY_SECONDS": 0.05}, crash_targets=("sender",)
    )
    ready = await scenario.start("poller", "sender")
    start = ready + timedelta(seconds=LEAD_SECONDS)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await kill_repeatedly(
        scenario.stack,
        "sender",
        scenario.rng,
        kills=KILLS,
        gap=(0.3, 1.5),
        beats=scenario.beats,
        aims=AIMS,
        confirm={"mid-send": still_claimed(scenario.nc)},
        wait_seconds=5,
    )
    verdict = await scenario.finish(timeout=sized(120, 600))

    kills = scenario.stack.timeline.kills()
    mid_send = kills.get("sender:sigkill@mid-send", 0)
    scenario.expect("SIGKILLs of the sender", sum(kills.values()), "==", KILLS)
    # a kill while a send is held cuts exactly that send: it must be reported interrupted
    scenario.expect("kills that landed mid-send", mid_send, ">=", 1)
    scenario.expect("interrupted sends", verdict.interrupted, ">=", mid_send)
    scenario.expect("interrupted sends", verdict.interrupted, "<=", KILLS)
    scenario.expect(
        f"of {MESSAGES}, sent (all but the interrupted)",
        verdict.statuses["sent"],
        "==",
        MESSAGES - verdict.interrupted,
    )
    scenario.assert_ok()
