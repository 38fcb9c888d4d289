"""Scenario 4: stop the S3 server for longer than several poll intervals, then restore it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import TEST_BUCKET, test_server
from tests.faults.conftest import OpenScenario
from tests.faults.scenario import sized
from tests.faults.schedule import make_schedule
from tests.faults.stack import Stack
from wasched.cli.servers import S3Server, ensure_bucket, seaweed_server

MESSAGES = sized(200, 800)
WINDOW_SECONDS = sized(25, 100)
OUTAGE_SECONDS = 8.0
"""Eight poll intervals (POLL_INTERVAL_SECONDS=1)."""
LEAD_SECONDS = 3.0


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own (the session one is shared), restartable on its ports."""
    server = test_server(seaweed_server(tmp_path / "seaweed", bucket=TEST_BUCKET)).start(timeout=60)
    ensure_bucket(server, TEST_BUCKET)
    yield server
    server.stop()


async def s3_outage(stack: Stack, server: S3Server, seconds: float) -> None:
    outage = stack.timeline.begin("s3", "outage")
    server.stop()
    await asyncio.sleep(seconds)  # the outage itself: S3 is away this long
    server.start(60)  # on this thread: a server dies with the thread that started it
    await asyncio.to_thread(ensure_bucket, server, TEST_BUCKET)
    outage.finish()


@pytest.mark.timeout(sized(300, 1500))
async def test_s3_outage_delays_but_loses_nothing(
    own_s3: S3Server, open_scenario: OpenScenario
) -> None:
    scenario = await open_scenario("4 S3 outage", s3=own_s3)
    ready = await scenario.start("poller", "sender")
    start = ready + timedelta(seconds=LEAD_SECONDS)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await asyncio.sleep(max(0.0, start.timestamp() - time.time() + 5))
    went = time.time()
    await s3_outage(scenario.stack, own_s3, OUTAGE_SECONDS)
    noticed = [b for b in scenario.beats.since("poller", went) if b.get("storeReachable") is False]
    verdict = await scenario.finish(timeout=sized(120, 600))

    scenario.expect("S3 outages", len(scenario.stack.timeline.outages()), "==", 1)
    scenario.expect("heartbeats saying S3 is unreachable", len(noticed), ">=", 1)
    scenario.expect(f"of {MESSAGES}, sent", verdict.statuses["sent"], "==", MESSAGES)
    scenario.assert_ok()
