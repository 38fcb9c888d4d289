"""Each service idle after start: time to ready, RSS and CPU, from its image's environment.

Ready means: poller, its first heartbeat; sender, status `connected`; health,
`/ping` answers. The three are started one after the other (so start-up times
do not compete), then left idle together.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

from bench.harness import Beats, Cell, Stack
from bench.probes import cpu_seconds, rss_mb

SERVICES = ("poller", "sender", "health")


async def idle_services(st: Stack, idle: float, python: dict[str, str]) -> dict[str, float | None]:
    async with st.cell("footprint") as cell:
        st.put(cell.key, b'{"messages": []}')
        env = cell.env(POLL_INTERVAL_SECONDS=60)
        beats = await cell.heartbeats()
        pids: dict[str, int] = {}
        result: dict[str, float | None] = {}
        for service in SERVICES:
            started = time.monotonic()
            svc = cell.start(f"wasched.{service}", env, python[service])
            await _ready(cell, service, env["HEALTH_PORT"], beats)
            result[f"{service}_ready_s"] = time.monotonic() - started
            pids[service] = svc.pid
        cpu0 = {s: cpu_seconds(pid) for s, pid in pids.items()}
        await asyncio.sleep(idle)
        for service, pid in pids.items():
            result[f"{service}_rss_mb"] = rss_mb(pid)
            result[f"{service}_cpu_pct"] = (cpu_seconds(pid) - cpu0[service]) / idle * 100
        return result


async def _ready(cell: Cell, service: str, port: str, beats: Beats) -> None:
    if service == "poller":
        await beats.next(timeout=90)
    elif service == "sender":
        await cell.sender_connected(90)
    else:
        deadline = time.monotonic() + 90
        while not await asyncio.to_thread(_pings, port):
            if time.monotonic() > deadline:
                raise TimeoutError("health /ping never answered")
            await asyncio.sleep(0.02)


def _pings(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False
