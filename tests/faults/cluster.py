"""A three-node NATS cluster with JetStream: three local nats-server processes joined by routes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError

from tests.conftest import test_server
from wasched.cli.servers import NatsServer, free_port, nats_server
from wasched.common import topology

CLUSTER_NAME = "wasched-faults"


@dataclass
class Cluster:
    nodes: dict[str, NatsServer]

    @property
    def url(self) -> str:
        """All three URLs, as the services get them in NATS_URL."""
        return ",".join(node.url for node in self.nodes.values())

    def start(self) -> Cluster:
        for node in self.nodes.values():
            node.start(timeout=30)
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    async def connect(self) -> NATS:
        return await nats.connect(
            servers=[n.url for n in self.nodes.values()],
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
        )


def make_cluster(root: Path) -> Cluster:
    names = ["n1", "n2", "n3"]
    route_ports = {name: free_port() for name in names}
    routes = ",".join(f"nats://127.0.0.1:{port}" for port in route_ports.values())
    nodes = {}
    for name in names:
        extra = [
            "--server_name",
            name,
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            f"nats://127.0.0.1:{route_ports[name]}",
            "--routes",
            routes,
        ]
        nodes[name] = test_server(nats_server(root / name / "store", extra=extra))
    return Cluster(nodes)


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[Cluster]:
    cluster = make_cluster(root).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def declare_replicated(js: JetStreamContext, replicas: int, timeout: float = 60.0) -> None:
    """Declare the topology once the cluster has a JetStream meta leader (it takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await topology.declare(js, replicas=replicas)
            return
        except (JetStreamError, NatsError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not ready for R{replicas}: {exc!r}") from exc
            await asyncio.sleep(0.5)


async def stream_replicas(js: JetStreamContext) -> tuple[int, str | None]:
    """The stream's configured replicas and its current leader's server name."""
    info = await js.stream_info(topology.STREAM)
    leader = info.cluster.leader if info.cluster else None
    return info.config.num_replicas or 1, leader


async def bucket_replicas(js: JetStreamContext) -> dict[str, int]:
    """Every KV bucket's configured replicas (whoever created it: a service or the test)."""
    infos = await js.streams_info()
    return {
        info.config.name.removeprefix("KV_"): info.config.num_replicas or 1
        for info in infos
        if info.config.name and info.config.name.startswith("KV_")
    }
