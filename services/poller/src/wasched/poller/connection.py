"""Log the NATS connection's ups and downs in a few lines (nats-py reconnects on its own).

nats-py keeps retrying even the first connect, silently unless told; these
callbacks give the operator one line when NATS cannot be reached (repeated at
most once a minute) and one when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger("wasched.poller")

REPEAT_SECONDS = 60.0


def safe_url(url: str) -> str:
    """Host and port only: a NATS URL may carry credentials."""
    parts = [urlsplit(u.strip()) for u in url.split(",")]
    return ",".join(f"{p.hostname}:{p.port or 4222}" for p in parts)


class ConnectionLog:
    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.where = safe_url(url)
        self._clock = clock
        self._last_error: float | None = None
        self._down = False
        self._closing = False

    async def closing(self) -> None:
        """Our own shutdown closes the connection: nothing to report then."""
        self._closing = True

    async def on_error(self, error: Exception) -> None:
        now = self._clock()
        if self._last_error is not None and now - self._last_error < REPEAT_SECONDS:
            return
        self._last_error = now
        log.warning("NATS at %s: %s; retrying", self.where, str(error) or type(error).__name__)

    async def on_disconnected(self) -> None:
        if not self._down and not self._closing:
            self._down = True
            log.warning("lost the connection to NATS at %s; reconnecting", self.where)

    async def on_reconnected(self) -> None:
        self._down, self._last_error = False, None
        log.info("reconnected to NATS at %s", self.where)
