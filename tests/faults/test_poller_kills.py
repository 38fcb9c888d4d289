"""Scenario 2: SIGKILL the poller mid-cycle and mid-write, many times, restarting it each time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.faults.scenario import Scenario
from tests.faults.schedule import make_schedule
from tests.faults.stack import Heartbeats, Stack, kill_repeatedly, start_services
from tests.faults.summary import Summary
from wasched.cli.servers import S3Server
from wasched.common.clock import utcnow

MESSAGES = 250
WINDOW_SECONDS = 40.0
"""Each poller restart costs ~5–8 s (start-up plus the 3 s lease), so the run is longer."""
AIMS = {
    "random": None,
    "mid-cycle": r"loaded \d+ messages",  # the cycle has read S3 and is dispatching
    "after-write": r"saved \d+ outcome",  # S3 written, NATS ack not yet sent
    "mid-dispatch": r"→ wasched\.due",
}


@pytest.mark.timeout(300)
async def test_poller_killed_mid_cycle_and_mid_write_loses_nothing(
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    stack = Stack(tmp_path, seaweed, prefix, nats_url)
    stacks.append(stack)
    # a poller crash cannot interrupt a send: any `interrupted` outcome is a defect
    scenario = Scenario("2 poller SIGKILL", stack, report, crash_targets=())
    beats = Heartbeats()
    await beats.attach(nc)
    start = utcnow() + timedelta(seconds=10)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await start_services(stack, beats, "poller", "sender")
    kills = await kill_repeatedly(
        stack,
        "poller",
        scenario.rng,
        until=start.timestamp() + WINDOW_SECONDS + 3,
        gap=(0.3, 2.0),
        limit=15,
        beats=beats,
        aims=AIMS,
    )
    verdict = await scenario.finish(js, timeout=120)

    verdict.assert_ok()
    assert kills >= 5, f"only {kills} kills: the scenario proved little"
    assert verdict.statuses["sent"] == MESSAGES
