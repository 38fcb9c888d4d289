"""Scenario 6: a three-node NATS cluster (JetStream, replicas 3); SIGKILL one node mid-run
(the stream's leader) and keep it down: the system carries on."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.faults.cluster import (
    bucket_replicas,
    declare_replicated,
    running_cluster,
    stream_replicas,
)
from tests.faults.conftest import OpenScenario
from tests.faults.scenario import sized
from tests.faults.schedule import make_schedule
from wasched.common import topology

MESSAGES = sized(200, 800)
WINDOW_SECONDS = sized(25, 100)
REPLICAS = 3
LEAD_SECONDS = 3.0
KILL_AFTER_SECONDS = 8.0
"""After the first message is due: sends are under way when the leader dies."""


@pytest.mark.timeout(sized(300, 1500))
async def test_cluster_carries_on_when_a_node_dies(
    open_scenario: OpenScenario, tmp_path: Path
) -> None:
    with running_cluster(tmp_path / "cluster") as cluster:
        nc = await cluster.connect()
        try:
            js = nc.jetstream()
            await declare_replicated(js, REPLICAS)
            scenario = await open_scenario(
                "6 NATS cluster node killed", nats_url=cluster.url, nc=nc
            )
            ready = await scenario.start("poller", "sender")
            start = ready + timedelta(seconds=LEAD_SECONDS)
            scenario.seed_document(make_schedule(MESSAGES, start, WINDOW_SECONDS, scenario.rng))
            replicas, _ = await stream_replicas(js)
            # an R1 stream dies with its node: 138 of 200 messages stayed pending when tried
            scenario.expect(
                f"replicas of stream {topology.STREAM} after start-up", replicas, "==", REPLICAS
            )
            # the services run with their default NATS_REPLICAS (1): a bucket a service creates
            # itself must follow the replicas the deployment chose, or it dies with its node
            single = {name: n for name, n in (await bucket_replicas(js)).items() if n < REPLICAS}
            scenario.expect(f"buckets with fewer than {REPLICAS} replicas", len(single), "==", 0)
            if single:
                scenario.notes.append(f"buckets with fewer replicas: {single}")
            await asyncio.sleep(max(0.0, start.timestamp() - time.time() + KILL_AFTER_SECONDS))
            _, leader = await stream_replicas(js)
            victim = leader or "n1"
            scenario.stack.timeline.begin(f"nats-{victim}", "sigkill")
            cluster.nodes[victim].kill()
            scenario.notes.append(f"killed {victim}, the stream leader; it stayed down")
            verdict = await scenario.finish(timeout=sized(120, 600))
            scenario.expect("interrupted sends", verdict.interrupted, "<=", 1)
            scenario.expect(
                f"of {MESSAGES}, sent (all but the interrupted)",
                verdict.statuses["sent"],
                "==",
                MESSAGES - verdict.interrupted,
            )
            scenario.assert_ok()
        finally:
            await nc.close()
