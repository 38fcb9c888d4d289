"""Scenario 3: restart nats-server (same store dir) twice during the run: once stopped
cleanly, once SIGKILLed, each down for several seconds."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta

import pytest

from tests.faults.conftest import OpenScenario
from tests.faults.scenario import sized
from tests.faults.schedule import make_schedule
from tests.faults.stack import Stack
from wasched.cli.servers import NatsServer

MESSAGES = sized(250, 1000)
WINDOW_SECONDS = sized(25, 100)
OUTAGES = sized(2, 8)
LEAD_SECONDS = 3.0
FIRST_OUTAGE_SECONDS = 5.0
"""After the first message is due, so sends are under way when NATS goes."""


async def nats_outage(stack: Stack, server: NatsServer, seconds: float, sig: int) -> None:
    outage = stack.timeline.begin("nats", "outage")
    server.stop(sig=sig)
    await asyncio.sleep(seconds)  # the outage itself: NATS is away this long
    server.start()  # on this thread: a server dies with the thread that started it
    outage.finish()


@pytest.mark.timeout(sized(300, 1500))
async def test_nats_restarts_lose_nothing_and_send_nothing_twice(
    nats_server_proc: NatsServer, open_scenario: OpenScenario
) -> None:
    # a NATS outage can cut the send in flight (its outcome cannot be recorded)
    scenario = await open_scenario("3 nats-server restart")
    ready = await scenario.start("poller", "sender")
    start = ready + timedelta(seconds=LEAD_SECONDS)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await asyncio.sleep(max(0.0, start.timestamp() + FIRST_OUTAGE_SECONDS - time.time()))
    for n in range(OUTAGES):
        sig = signal.SIGTERM if n % 2 == 0 else signal.SIGKILL
        await nats_outage(scenario.stack, nats_server_proc, scenario.rng.uniform(3, 6), sig)
        await asyncio.sleep(scenario.rng.uniform(3, 6))
    verdict = await scenario.finish(timeout=sized(120, 600))

    scenario.expect("NATS outages", len(scenario.stack.timeline.outages()), "==", OUTAGES)
    scenario.expect("interrupted sends", verdict.interrupted, "<=", OUTAGES)
    scenario.expect(
        f"of {MESSAGES}, sent (all but the interrupted)",
        verdict.statuses["sent"],
        "==",
        MESSAGES - verdict.interrupted,
    )
    scenario.assert_ok()
