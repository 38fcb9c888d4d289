"""Scenario 4: stop the S3 server for longer than several poll intervals, then restore it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.conftest import TEST_BUCKET
from tests.faults.scenario import Scenario
from tests.faults.schedule import make_schedule
from tests.faults.stack import Heartbeats, Stack, start_services
from tests.faults.summary import Summary
from wasched.cli.servers import S3Server, ensure_bucket, seaweed_server
from wasched.common.clock import utcnow

MESSAGES = 200
WINDOW_SECONDS = 25.0
OUTAGE_SECONDS = 8.0
"""Eight poll intervals (POLL_INTERVAL_SECONDS=1)."""


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[S3Server]:
    """A SeaweedFS of this test's own (the session one is shared), restartable on its ports."""
    server = seaweed_server(tmp_path / "seaweed", bucket=TEST_BUCKET).start(timeout=60)
    ensure_bucket(server, TEST_BUCKET)
    yield server
    server.stop()


async def s3_outage(stack: Stack, server: S3Server, seconds: float) -> None:
    outage = stack.timeline.begin("s3", "outage")
    server.stop()
    await asyncio.sleep(seconds)  # the outage itself: S3 is away this long
    await asyncio.to_thread(server.start, 60)
    await asyncio.to_thread(ensure_bucket, server, TEST_BUCKET)
    outage.finish()


@pytest.mark.timeout(300)
async def test_s3_outage_delays_but_loses_nothing(
    own_s3: S3Server,
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    stack = Stack(tmp_path / "run", own_s3, prefix, nats_url)
    stacks.append(stack)
    scenario = Scenario("4 S3 outage", stack, report, crash_targets=())
    beats = Heartbeats()
    await beats.attach(nc)
    start = utcnow() + timedelta(seconds=8)
    scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

    await start_services(stack, beats, "poller", "sender")
    await asyncio.sleep(max(0.0, start.timestamp() - time.time() + 5))
    went = time.time()
    await s3_outage(stack, own_s3, OUTAGE_SECONDS)
    noticed = [b for b in beats.since("poller", went) if b.get("storeReachable") is False]
    verdict = await scenario.finish(js, timeout=120)

    verdict.assert_ok()
    assert verdict.statuses["sent"] == MESSAGES
    assert noticed, "the poller's heartbeat never reported S3 unreachable during the outage"
