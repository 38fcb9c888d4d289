"""One outcome written into the worst-case document: how long, how much CPU, how much memory.

A few messages of a big document come due one at a time (far enough apart
that their writes do not overlap); each is sent (dryrun) and its outcome goes
back into the document. Measured from outside: the write is the poller's
conditional GET that precedes its PUT of the document up to the PUT's answer
(wall time and the poller's CPU over that span, from the recording proxy);
`sent_to_stored` runs from the send (the dryrun outbox's `at`) to that answer.
Peak RSS is reset once the first poll is done, so it covers the writes only.
"""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime, timedelta

from bench import documents
from bench.harness import Stack
from bench.probes import peak_rss_mb, reset_peak
from bench.proxy import Request
from bench.scenarios.polling import next_request
from wasched.common.clock import format_utc, parse_utc


async def wasched_writes(
    st: Stack, size: int, singles: int, lead: float, gap: float, python: dict[str, str]
) -> dict[str, float | None]:
    async with st.cell("write") as cell:
        now = datetime.now(UTC)
        msgs = documents.worst_case(size, "w", now + timedelta(days=2), timedelta(minutes=5))
        for j in range(singles):
            msgs[1 + j]["scheduledTime"] = format_utc(now + timedelta(seconds=lead + j * gap))
        st.put(cell.key, documents.render(msgs))
        del msgs
        beats = await cell.heartbeats()
        env = cell.env(POLL_INTERVAL_SECONDS=3600, SCHEDULE_HORIZON_SECONDS=7200)
        mark = st.proxy.mark()
        cell.start("wasched.sender", env, python["sender"])
        poller = cell.start("wasched.poller", env, python["poller"])
        st.proxy.watch(poller.pid)
        first = await next_request(st, mark, cell.key, "GET", 200)
        await beats.after(first.ended)
        reset_peak(poller.pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lead + singles * gap + 120
        while loop.time() < deadline:
            puts = [r for r in st.proxy.since(mark, cell.key) if r.method == "PUT"]
            if len(puts) >= singles:
                break
            await asyncio.sleep(0.1)
        peak = peak_rss_mb(poller.pid)
        st.proxy.watch(None)
        reqs = st.proxy.since(mark, cell.key)
        sent = {line["id"]: parse_utc(line["at"]).timestamp() for line in cell.sent_lines()}
        spans = [_span(reqs, put) for put in reqs if put.method == "PUT"]
        return {
            "cpu": _median([cpu for cpu, _ in spans]),
            "wall": _median([wall for _, wall in spans]),
            "sent_to_stored": _median(_latencies(reqs, sent)),
            "writes": float(len(spans)),
            "peak_rss_mb": peak,
        }


def _span(reqs: list[Request], put: Request) -> tuple[float | None, float]:
    """CPU and wall time from the GET just before this PUT to the PUT's answer."""
    get = next((r for r in reversed(reqs) if r.method == "GET" and r.started < put.started), put)
    cpu = (
        put.cpu_ended - get.cpu_started
        if put.cpu_ended is not None and get.cpu_started is not None
        else None
    )
    return cpu, put.ended - get.started


def _latencies(reqs: list[Request], sent: dict[str, float]) -> list[float]:
    """For each send, the first PUT answered after it."""
    puts = sorted(r.ended for r in reqs if r.method == "PUT")
    found = []
    for at in sent.values():
        after = next((end for end in puts if end > at), None)
        if after is not None:
            found.append(after - at)
    return found


def _median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None
