"""What a poll costs the poller, from outside: CPU, peak RSS, S3 requests and bytes.

The poller's heartbeat (published after every cycle, docs/contracts.md) ends a
poll; the recording proxy says what S3 answered. CPU per 304 poll is the
poller's CPU from one heartbeat to the next over polls S3 answered 304, at
`POLL_INTERVAL_SECONDS=1`: an upper bound, since the 1 s pause's idle work
(lease renewal, NATS pulls) is in it too; `idle` is that background alone (CPU
per second of pause, between a heartbeat and the next GET), so the poll's own
share is the difference. The product's own hooks (heartbeat `cycleCpuSeconds`,
`decided`) give the same figures from inside: the poll's CPU and the steps it
decided again. The baseline is measured the same way, its polls
bracketed by its GETs.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Iterable

from bench import documents
from bench.harness import Beat, Beats, Cell, Stack
from bench.probes import peak_rss_mb
from bench.proxy import Request


async def wasched_polls(st: Stack, body: bytes, polls: int) -> dict[str, float | None]:
    async with st.cell("poll") as cell:
        st.put(cell.key, body)
        beats = await cell.heartbeats()
        mark = st.proxy.mark()
        poller = cell.start("wasched.poller", cell.env(POLL_INTERVAL_SECONDS=1))
        beats.pid = poller.pid
        st.proxy.watch(poller.pid)
        first = await next_request(st, mark, cell.key, "GET", 200)
        settled = await beats.after(first.ended)
        start = last = await beats.after(settled.heard)  # the cycle after the full read
        for _ in range(polls):
            last = await beats.after(last.heard)
        window = [r for r in st.proxy.since(mark) if start.heard < r.started < last.heard]
        gets = [r for r in window if r.method == "GET" and r.of(cell.key)]
        hit = [
            b.details
            for b in beats.history
            if start.heard < b.heard <= last.heard and b.details.get("etagHit") is True
        ]
        changed_cpu, changed_wall, changed_own = await _changed_poll(st, cell, beats, body)
        per_poll = _cpu(last, start) / polls
        idle = _idle(beats.history, gets, start.heard, last.heard)
        result = {
            "cpu_304_hook": _median(d.get("cycleCpuSeconds") for d in hit),
            "decided_304": _median(d.get("decided") for d in hit),
            "cpu_changed_hook": changed_own,
            "cpu_304": per_poll,
            "cpu_304_own": per_poll - idle if idle is not None else None,
            "idle_share": idle,
            "answered_304": sum(r.status == 304 for r in gets) / polls,
            "requests_per_poll": len(window) / polls,
            "bytes_per_poll": sum(r.bytes_out + r.bytes_in for r in window) / polls,
            "cpu_changed": changed_cpu,
            "wall_changed": changed_wall,
            "peak_rss_mb": peak_rss_mb(poller.pid),
        }
        st.proxy.watch(None)
        return result


async def next_request(
    st: Stack, mark: int, key: str, method: str, status: int | None = None, timeout: float = 300
) -> Request:
    """The first request for `key` logged after `mark` with this method (and status)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for r in st.proxy.since(mark, key):
            if r.method == method and (status is None or r.status == status):
                return r
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no {method} {key} ({status}) within {timeout:g}s")


def _cpu(later: Beat, earlier: Beat) -> float:
    assert later.cpu is not None and earlier.cpu is not None
    return later.cpu - earlier.cpu


def _idle(history: list[Beat], gets: list[Request], since: float, until: float) -> float | None:
    """Mean CPU seconds of a pause: from each heartbeat to the next GET."""
    cpu, pauses = 0.0, 0
    beats = [b for b in history if since <= b.heard <= until]
    for beat, nxt in itertools.pairwise(beats):
        get = next((g for g in gets if beat.heard < g.started < nxt.heard), None)
        if get is None or get.cpu_started is None or beat.cpu is None:
            continue
        cpu += get.cpu_started - beat.cpu
        pauses += 1
    return cpu / pauses if pauses else None


async def _changed_poll(
    st: Stack, cell: Cell, beats: Beats, body: bytes
) -> tuple[float | None, float | None, float | None]:
    """One message's text changed: CPU from the heartbeat before the GET that brought the
    new body to the heartbeat after that poll, wall time from that GET to that heartbeat,
    and the poll's own `cycleCpuSeconds` (the product's hook)."""
    await asyncio.to_thread(st.put, cell.key, documents.one_changed(body, 1))
    mark = st.proxy.mark()
    got = await next_request(st, mark, cell.key, "GET", 200)
    after = await beats.next_where(
        lambda b: b.heard > got.ended and b.details.get("etagHit") is False
    )
    before = beats.before(got.started)
    own = after.details.get("cycleCpuSeconds")
    if before is None:
        return None, None, own
    return _cpu(after, before), after.heard - got.started, own


def _median(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


async def baseline_polls(st: Stack, body: bytes, polls: int) -> dict[str, float | None]:
    """The old loop on the same document: every poll GETs and PUTs all of it."""
    async with st.cell("poll-base") as cell:
        st.put(cell.key, body)
        mark = st.proxy.mark()
        base = cell.start("bench.baseline", cell.env(BASELINE_INTERVAL_SECONDS=1))
        st.proxy.watch(base.pid)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            gets = [r for r in st.proxy.since(mark, cell.key) if r.method == "GET"]
            if len(gets) >= polls + 2:
                break
            await asyncio.sleep(0.2)
        reqs = st.proxy.since(mark, cell.key)
        gets = [r for r in reqs if r.method == "GET"][1 : polls + 2]  # the first one warms up
        puts = [r for r in reqs if r.method == "PUT" and gets[0].started < r.started]
        first, last = gets[0], gets[-1]
        window = [r for r in reqs if first.started <= r.started < last.started]
        assert first.cpu_started is not None and last.cpu_started is not None
        result = {
            "cpu_poll": (last.cpu_started - first.cpu_started) / polls,
            "wall_poll": (puts[0].ended - first.started) if puts else None,
            "requests_per_poll": len(window) / polls,
            "bytes_per_poll": sum(r.bytes_out + r.bytes_in for r in window) / polls,
            "peak_rss_mb": peak_rss_mb(base.pid),
        }
        st.proxy.watch(None)
        return result
