"""Live state for the health service: `SenderStatus` on every change and every few seconds,
plus the sender heartbeat (core NATS, no persistence).

Changes go through a queue drained by one task, so subscribers see them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS

from wasched.common.clock import format_utc, utcnow
from wasched.common.events import Heartbeat, SenderStatus
from wasched.common.topology import SENDER_STATUS, heartbeat_subject
from wasched.sender.connection import Connection

log = logging.getLogger("wasched.sender.status")
SERVICE = "sender"


@dataclass
class Stats:
    sent_since_start: int = 0
    in_flight: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    out_of_date: int = 0
    """Hand-overs of a version the ledger's gate no longer allows (acked, nothing sent)."""
    held_same_text: int = 0
    """Times a message waited because its text went to too many recipients already."""
    next_send_at: datetime | None = None
    waiting_for: str | None = None
    next_lookup_at: datetime | None = None
    journal_pending: Callable[[], int] = lambda: 0
    rehearsal: bool = False
    """A dry run over a schedule it does not own: its sends are rehearsed, not recorded."""

    def reject(self, subject: str) -> None:
        self.rejected[subject] = self.rejected.get(subject, 0) + 1


def status_event(conn: Connection, transport: str, now: datetime) -> SenderStatus:
    return SenderStatus(
        state=conn.state,
        at=now,
        transport=transport,
        detail=conn.detail,
        qr=conn.qr,
        pair_code=conn.pair_code,
        until=conn.until,
    )


def heartbeat_details(
    conn: Connection, transport: str, stats: Stats, now: datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "state": conn.state,
        "transport": transport,
        "inFlight": stats.in_flight,
        "sentSinceStart": stats.sent_since_start,
        "rejectedEvents": dict(stats.rejected),
        "outOfDate": stats.out_of_date,
        "heldSameText": stats.held_same_text,
        "nextSendAt": _future(stats.next_send_at, now),
        "waitingFor": stats.waiting_for if _future(stats.next_send_at, now) else None,
        "nextLookupAt": _future(stats.next_lookup_at, now),
        "journalPending": stats.journal_pending(),
        **({"rehearsal": True} if stats.rehearsal else {}),
    }


def _future(when: datetime | None, now: datetime) -> str | None:
    return format_utc(when) if when is not None and when > now else None


class StatusReporter:
    def __init__(
        self,
        nc: NATS,
        transport: str,
        stats: Stats,
        *,
        interval: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._nc = nc
        self._transport = transport
        self._stats = stats
        self._interval = interval
        self._clock = clock
        self._queue: asyncio.Queue[Connection] = asyncio.Queue()
        self._last = Connection()

    def changed(self, conn: Connection) -> None:
        self._queue.put_nowait(conn)

    async def run(self) -> None:
        """Changes at once; status and heartbeat every `interval` even while changes pour in."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            try:  # `asyncio.timeout`, not `wait_for`: on 3.11 that can swallow a cancel
                async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                    conn = await self._queue.get()
            except TimeoutError:
                pass
            else:
                self._last = conn
                await self._publish(conn, heartbeat=False)
            if loop.time() >= next_beat:
                await self._publish(self._last, heartbeat=True)
                next_beat = loop.time() + self._interval

    async def flush(self) -> None:
        """Publish what is queued and a last heartbeat (at shutdown)."""
        while not self._queue.empty():
            self._last = self._queue.get_nowait()
            await self._publish(self._last, heartbeat=False)
        await self._publish(self._last, heartbeat=True)
        with contextlib.suppress(Exception):
            await self._nc.flush(timeout=2)

    async def _publish(self, conn: Connection, *, heartbeat: bool) -> None:
        now = self._clock()
        try:
            await self._nc.publish(
                SENDER_STATUS, status_event(conn, self._transport, now).to_json()
            )
            if heartbeat:
                beat = Heartbeat(
                    service=SERVICE,
                    at=now,
                    details=heartbeat_details(conn, self._transport, self._stats, now),
                )
                await self._nc.publish(heartbeat_subject(SERVICE), beat.to_json())
        except Exception as exc:  # NATS down: the next tick tries again
            log.debug("status publish failed: %s", exc)
