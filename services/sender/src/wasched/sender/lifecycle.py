"""Carries out the connection state machine: events in, actions out, consumers woken.

The transport reports events (it is the `TransportListener`); a 1 s tick drives
the timed transitions (ban expiry, replaced back-off, pairing window). `ready`
is set exactly while sending is allowed, so the consumers fetch nothing
otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from wasched.common.clock import utcnow
from wasched.sender.connection import (
    Action,
    ConnectFailed,
    Connection,
    ConnEvent,
    Exit,
    Limits,
    Restart,
    StopClient,
    Tick,
    step,
)
from wasched.sender.transport import ReceiptSeen, Transport

log = logging.getLogger("wasched.sender.lifecycle")
TICK_SECONDS = 1.0
_QUIET = {"connected", "connecting", "starting", "pairing", "stopped"}


class Lifecycle:
    def __init__(
        self,
        transport: Transport,
        limits: Limits,
        *,
        on_change: Callable[[Connection], None],
        on_receipt: Callable[[ReceiptSeen], None],
        on_exit: Callable[[int, str], None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.transport = transport
        self.limits = limits
        self.conn = Connection()
        self.ready = asyncio.Event()
        self._on_change = on_change
        self._on_receipt = on_receipt
        self._on_exit = on_exit
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._restart: asyncio.Task[None] | None = None
        self._exiting = False

    # TransportListener -------------------------------------------------------

    def connection_event(self, event: ConnEvent) -> None:
        before = self.conn
        self.conn, actions = step(self.conn, event, self._clock(), self.limits)
        if self.conn != before:
            self._report(before, self.conn)
        if self.conn.can_send:
            self.ready.set()
        else:
            self.ready.clear()
        for action in actions:
            self._act(action)

    def receipt(self, seen: ReceiptSeen) -> None:
        self._on_receipt(seen)

    # ------------------------------------------------------------------------

    async def run_ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.connection_event(Tick())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _report(self, before: Connection, after: Connection) -> None:
        if before.state != after.state or before.detail != after.detail:
            level = logging.INFO if after.state in _QUIET else logging.WARNING
            detail = f" ({after.detail})" if after.detail else ""
            log.log(level, "WhatsApp %s%s", after.state, detail)
        self._on_change(after)

    def _act(self, action: Action) -> None:
        match action:
            case StopClient():
                self._spawn(self._stop_client())
            case Restart(after):
                if self._restart is None or self._restart.done():
                    self._restart = self._spawn(self._restart_after(after))
            case Exit(code, reason):
                if not self._exiting:
                    self._exiting = True
                    log.error("exiting with code %d: %s", code, reason)
                    self._on_exit(code, reason)

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop_client(self) -> None:
        try:
            await self.transport.stop_client()
        except Exception:
            log.exception("stopping the WhatsApp client failed")

    async def _restart_after(self, delay: float) -> None:
        if delay > 0:
            log.info("reconnecting to WhatsApp in %gs", delay)
            await asyncio.sleep(delay)
        try:
            await self.transport.restart()
        except Exception as exc:
            log.exception("restarting the WhatsApp client failed")
            self.connection_event(ConnectFailed(f"could not start the WhatsApp client: {exc}"))
