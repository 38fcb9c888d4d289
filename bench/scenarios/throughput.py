"""Many messages due at once in the worst-case document, throttle off, end to end.

The services run on the document's far-future part; then the document is
replaced by one in which `due` more messages are due now. The clock starts
when the poller's GET brings the new document (so the poll interval does not
count) and stops when every outcome is stored: the poller acks an outcome only
after the S3 write that holds it (docs/design.md, guarantee 2), so an empty
`poller-outcome` consumer with every outcome published means all are stored;
the stored document is checked afterwards. A run still going at `cap` seconds
is cut there and counts what the document holds at that moment.
"""

from __future__ import annotations

import asyncio
import time

from bench.harness import Cell, Stack
from bench.probes import peak_rss_mb
from bench.proxy import Request
from bench.scenarios.polling import next_request
from wasched.common import topology
from wasched.common.clock import parse_utc


async def wasched_burst(
    st: Stack, before: bytes, after: bytes, due: int, cap: float, python: dict[str, str]
) -> dict[str, float | None]:
    async with st.cell("e2e") as cell:
        st.put(cell.key, before)
        beats = await cell.heartbeats()
        env = cell.env(POLL_INTERVAL_SECONDS=5)
        mark = st.proxy.mark()
        cell.start("wasched.sender", env, python["sender"])
        poller = cell.start("wasched.poller", env, python["poller"])
        first = await next_request(st, mark, cell.key, "GET", 200)
        await beats.after(first.ended)
        await cell.sender_connected()
        await asyncio.to_thread(st.put, cell.key, after)
        got = await _get_of(st, mark, cell.key, len(after))
        t0 = got.started
        finished = await _all_stored(cell, due, t0 + cap)
        end = time.time()
        stored = await asyncio.to_thread(_count_sent, st, cell.key)
        sends = cell.sent_lines()
        writes = [
            r for r in st.proxy.since(mark, cell.key) if r.method == "PUT" and r.started >= t0
        ]
        if finished and writes:
            end = max(r.ended for r in writes)
        seconds = end - t0
        return {
            "stored_per_s": stored / seconds,
            "seconds": seconds,
            "stored": float(stored),
            "finished": 1.0 if finished and stored >= due else 0.0,
            "sent_per_s": len(sends) / _last_send(sends, t0),
            "writes": float(len(writes)),
            "outcomes_per_write": stored / len(writes) if writes else None,
            "peak_rss_mb": peak_rss_mb(poller.pid),
        }


async def _get_of(st: Stack, mark: int, key: str, size: int, timeout: float = 120) -> Request:
    """The first GET that brought a body of `size` bytes (the new document)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in st.proxy.since(mark, key):
            if r.method == "GET" and r.status == 200 and r.bytes_out == size:
                return r
        await asyncio.sleep(0.05)
    raise TimeoutError("the poller never read the new document")


async def _all_stored(cell: Cell, due: int, until: float) -> bool:
    js = cell.nc.jetstream()
    while time.time() < until:
        info = await js.stream_info(topology.STREAM, subjects_filter=topology.OUTCOME)
        published = (info.state.subjects or {}).get(topology.OUTCOME, 0)
        if published >= due:
            consumer = await js.consumer_info(topology.STREAM, topology.POLLER_OUTCOME)
            if not consumer.num_pending and not consumer.num_ack_pending:
                return True
        await asyncio.sleep(0.25)
    return False


def _count_sent(st: Stack, key: str) -> int:
    return sum(m.get("status") == "sent" for m in st.get_messages(key))


def _last_send(sends: list[dict[str, object]], t0: float) -> float:
    if not sends:
        return float("inf")
    last = max(parse_utc(str(line["at"])).timestamp() for line in sends)
    return max(1e-3, last - t0)


async def baseline_burst(st: Stack, after: bytes, due: int) -> dict[str, float | None]:
    """The old loop's first poll of the same document: GET, send every due one, PUT."""
    async with st.cell("e2e-base") as cell:
        st.put(cell.key, after)
        mark = st.proxy.mark()
        base = cell.start("bench.baseline", cell.env(BASELINE_INTERVAL_SECONDS=3600))
        get = await next_request(st, mark, cell.key, "GET", 200)
        put = await next_request(st, mark, cell.key, "PUT", None, timeout=900)
        seconds = put.ended - get.started
        sends = cell.sent_lines()
        return {
            "stored_per_s": due / seconds,
            "seconds": seconds,
            "stored": float(len(sends)),
            "finished": 1.0 if len(sends) >= due else 0.0,
            "sent_per_s": len(sends) / _last_send(sends, get.started),
            "writes": 1.0,
            "outcomes_per_write": float(len(sends)),
            "peak_rss_mb": peak_rss_mb(base.pid),
        }
