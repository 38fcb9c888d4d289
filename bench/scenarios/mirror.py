"""The poller's live copy of the ledger: its memory at 100k entries.

The ledger is filled with final entries like a year of use leaves them (sent,
over the last 90 days, each to another number), straight into the JetStream KV
bucket; the poller is started on a tiny schedule with the ledger empty, then
full. Its RSS once ready, full minus empty, is the mirror's cost.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import documents
from bench.harness import Cell, Stack
from bench.probes import rss_mb
from bench.scenarios.polling import next_request
from wasched.common import topology
from wasched.common.ledger import LedgerEntry, LedgerState


async def wasched_mirror(st: Stack, entries: int, python: str) -> dict[str, float | None]:
    async with st.cell("mirror") as cell:
        now = datetime.now(UTC)
        small = documents.worst_case(10, "m", now + timedelta(days=2), timedelta(minutes=5))
        st.put(cell.key, documents.render(small))
        empty, _ = await _ready_rss(st, cell, python)
        await fill_ledger(cell, entries, now)
        full, beat = await _ready_rss(st, cell, python)
        return {
            "empty_rss_mb": empty,
            "full_rss_mb": full,
            "mirror_mb": full - empty,
            "entries": beat.get("mirrorEntries"),
            "stored_mb": beat["mirrorBytes"] / 1e6 if "mirrorBytes" in beat else None,
        }


async def _ready_rss(st: Stack, cell: Cell, python: str) -> tuple[float, dict[str, Any]]:
    """RSS of a fresh poller once its first poll is done and it has settled for a second,
    and the heartbeat after that poll (the mirror's own figures)."""
    beats = await cell.heartbeats()
    mark = st.proxy.mark()
    poller = cell.start(
        "wasched.poller",
        cell.env(POLL_INTERVAL_SECONDS=3600, SCHEDULE_HORIZON_SECONDS=7200),
        python,
    )
    first = await next_request(st, mark, cell.key, "GET", 200)
    beat = await beats.after(first.ended)
    await asyncio.sleep(1.0)
    rss = rss_mb(poller.pid)
    await cell.stop(poller)
    return rss, beat.details


async def fill_ledger(cell: Cell, count: int, now: datetime) -> None:
    """`count` final entries, published without waiting for each ack, then counted."""
    js = cell.nc.jetstream()
    await topology.declare(js)
    subject = f"$KV.{topology.LEDGER_BUCKET}."
    for i in range(count):
        at = now - timedelta(seconds=90 * 86400 * i / max(1, count))
        entry = LedgerEntry(
            state=LedgerState.SENT,
            at=at,
            sent_at=at,
            wa_message_id=f"3EB0{i:018X}",
            jid=f"{documents.distinct(i)}@s.whatsapp.net",
            version=f"{i:016x}",
        )
        await cell.nc.publish(subject + topology.ledger_key(f"m{i}"), entry.to_json())
        if i % 5000 == 4999:
            await cell.nc.flush()
    await cell.nc.flush()
    stream = f"KV_{topology.LEDGER_BUCKET}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while loop.time() < deadline:
        info = await js.stream_info(stream)
        if (info.state.messages or 0) >= count:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the ledger holds {info.state.messages} of {count} entries")
