"""Scenario 1: SIGKILL the sender at random moments, many times, restarting it each time."""

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

MESSAGES = 300
WINDOW_SECONDS = 25.0


@pytest.mark.timeout(300)
async def test_sender_killed_mid_send_never_sends_twice_and_loses_nothing(
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    # each send is held 50 ms after its claim, so kills land between claim and outcome
    stack = Stack(tmp_path, seaweed, prefix, nats_url, {"DRYRUN_SEND_DELAY_SECONDS": 0.05})
    stacks.append(stack)
    scenario = Scenario("1 sender SIGKILL", stack, report, crash_targets=("sender",))
    beats = Heartbeats()
    await beats.attach(nc)
    start = utcnow() + timedelta(seconds=10)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await start_services(stack, beats, "poller", "sender")
    kills = await kill_repeatedly(
        stack,
        "sender",
        scenario.rng,
        until=start.timestamp() + WINDOW_SECONDS + 3,
        gap=(0.5, 3.0),
        limit=25,
        beats=beats,
        aims={"random": None, "mid-send": r"DRYRUN_SEND_DELAY_SECONDS: holding"},
    )
    verdict = await scenario.finish(js, timeout=120)

    verdict.assert_ok()
    assert kills >= 5, f"only {kills} kills: the scenario proved little"
    assert verdict.statuses["sent"] >= MESSAGES - kills
