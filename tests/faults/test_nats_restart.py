"""Scenario 3: restart nats-server (same store dir) twice during the run: once stopped
cleanly, once SIGKILLed, each down for several seconds."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.faults.scenario import Scenario
from tests.faults.schedule import make_schedule
from tests.faults.stack import Heartbeats, Stack, start_services
from tests.faults.summary import Summary
from wasched.cli.servers import NatsServer, S3Server
from wasched.common.clock import utcnow

MESSAGES = 250
WINDOW_SECONDS = 25.0


async def nats_outage(stack: Stack, server: NatsServer, seconds: float, sig: int) -> None:
    outage = stack.timeline.begin("nats", "outage")
    server.stop(sig=sig)
    await asyncio.sleep(seconds)  # the outage itself: NATS is away this long
    await asyncio.to_thread(server.start)
    outage.finish()


@pytest.mark.timeout(300)
async def test_nats_restarts_lose_nothing_and_send_nothing_twice(
    nats_server_proc: NatsServer,
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    stack = Stack(tmp_path / "run", seaweed, prefix, nats_url)
    stacks.append(stack)
    scenario = Scenario("3 nats-server restart", stack, report, crash_targets=("nats",))
    beats = Heartbeats()
    await beats.attach(nc)
    start = utcnow() + timedelta(seconds=8)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await start_services(stack, beats, "poller", "sender")
    await asyncio.sleep(max(0.0, start.timestamp() - utcnow().timestamp() + 5))
    await nats_outage(stack, nats_server_proc, scenario.rng.uniform(3, 6), signal.SIGTERM)
    await asyncio.sleep(scenario.rng.uniform(3, 6))
    await nats_outage(stack, nats_server_proc, scenario.rng.uniform(3, 6), signal.SIGKILL)
    verdict = await scenario.finish(js, timeout=120)

    verdict.assert_ok()
    assert verdict.statuses["sent"] + verdict.interrupted == MESSAGES
