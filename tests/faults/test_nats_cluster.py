"""Scenario 6: a three-node NATS cluster (JetStream, replicas 3); SIGKILL one node mid-run
(the stream's leader) and keep it down: the system carries on."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.faults.cluster import declare_replicated, running_cluster, stream_replicas
from tests.faults.scenario import Scenario
from tests.faults.schedule import make_schedule
from tests.faults.stack import Heartbeats, Stack, start_services
from tests.faults.summary import Summary
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.common.clock import utcnow

MESSAGES = 200
WINDOW_SECONDS = 25.0
REPLICAS = 3


@pytest.mark.timeout(300)
async def test_cluster_carries_on_when_a_node_dies(
    seaweed: S3Server,
    prefix: str,
    tmp_path: Path,
    report: list[Summary],
    stacks: list[Stack],
) -> None:
    with running_cluster(tmp_path / "cluster") as cluster:
        nc = await cluster.connect()
        try:
            js = nc.jetstream()
            await declare_replicated(js, REPLICAS)
            stack = Stack(tmp_path / "run", seaweed, prefix, cluster.url)
            stacks.append(stack)
            scenario = Scenario(
                "6 NATS cluster node killed", stack, report, crash_targets=("nats",)
            )
            beats = Heartbeats()
            await beats.attach(nc)
            start = utcnow() + timedelta(seconds=8)
            scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))

            await start_services(stack, beats, "poller", "sender")
            replicas, _ = await stream_replicas(js)
            # an R1 stream dies with its node: 138 of 200 messages stayed pending when tried
            assert replicas == REPLICAS, (
                f"stream {topology.STREAM} has {replicas} replica(s) after the services started "
                f"(declared {REPLICAS}): their topology.declare(js) scaled it down"
            )
            await asyncio.sleep(max(0.0, start.timestamp() - time.time() + 8))
            _, leader = await stream_replicas(js)
            victim = leader or "n1"
            stack.timeline.begin(f"nats-{victim}", "sigkill")
            cluster.nodes[victim].kill()
            scenario.notes.append(f"killed {victim}, the stream leader; it stayed down")
            verdict = await scenario.finish(js, timeout=120)
        finally:
            await nc.close()

    verdict.assert_ok()
    assert verdict.statuses["sent"] + verdict.interrupted == MESSAGES
