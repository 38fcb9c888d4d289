"""The containers' HEALTHCHECK commands (`python -m wasched.common.probe ...`) against real NATS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from nats.aio.client import Client as NATS

from wasched.cli.servers import NatsServer, free_port
from wasched.common.events import Heartbeat
from wasched.common.topology import heartbeat_subject


async def probe(*argv: str, nats_url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wasched.common.probe", *argv,
        env={**os.environ, "NATS_URL": nats_url}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode().strip()


async def test_heartbeat_probe_passes_only_while_the_service_beats(nc: NATS, nats_url: str) -> None:
    async def beat() -> None:
        while True:
            await nc.publish(heartbeat_subject("poller"), Heartbeat(service="poller").to_json())
            await asyncio.sleep(0.2)

    task = asyncio.create_task(beat())
    try:
        assert await probe("heartbeat", "poller", nats_url=nats_url) == (
            0,
            "poller: heartbeat heard",
        )
        silent = await probe("heartbeat", "sender", "--timeout", "1", nats_url=nats_url)
        assert silent == (1, "sender: no heartbeat in 1s")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_probes_fail_in_one_line_when_nothing_answers() -> None:
    code, out = await probe("heartbeat", "poller", nats_url=f"nats://127.0.0.1:{free_port()}")
    assert (code, out) == (1, "poller: cannot reach NATS (NoServersError)")
    url = f"http://127.0.0.1:{free_port()}/ping"
    assert await probe("http", url, nats_url="nats://unused:1") == (1, f"{url}: no 200 answer")


async def test_http_probe_passes_on_200(nats_server_proc: NatsServer) -> None:
    healthz = nats_server_proc.ready_url  # nats-server's monitoring /healthz
    assert await probe("http", healthz, nats_url="nats://unused:1") == (0, f"{healthz}: ok")
