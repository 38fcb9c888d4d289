"""Which sender instances are alive: one key each in `wasched-senders`, refreshed every third
of the bucket's max age; a key that is not refreshed expires with it.

A claim names its holder. Only a claim whose holder is gone may be declared `interrupted`:
the holder may be sending still (a slow send, a second sender). "Gone" trusts no single
read: the key must stay missing for `ttl` more seconds of our own clock, which outlasts a
NATS outage that kept the holder from refreshing (it refreshes within a third of `ttl` once
NATS is back).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable

from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from wasched.common.clock import format_utc, utcnow
from wasched.sender.policy import Holder

log = logging.getLogger("wasched.sender.liveness")


def new_holder_id() -> str:
    """host-pid-random, in the characters a KV key allows."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Liveness:
    def __init__(
        self,
        kv: KeyValue,
        holder: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kv, self.holder, self.ttl, self._clock = kv, holder, ttl, clock
        self._missing_since: dict[str, float] = {}

    async def beat(self) -> bool:
        try:
            await self.kv.put(self.holder, format_utc(utcnow()).encode())
        except Exception as exc:  # NATS away: the next beat tries again
            log.debug("liveness refresh failed: %s", exc)
            return False
        return True

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.ttl / 3)

    async def leave(self) -> None:
        """A clean stop: our claims are settled or released, nobody needs to wait for us."""
        try:
            await self.kv.delete(self.holder)
        except Exception as exc:
            log.debug("removing the liveness key failed: %s", exc)

    async def state_of(self, holder: str | None) -> Holder:
        """Is the sender holding a claim alive? (raises when NATS cannot say)"""
        if holder is None:
            return Holder.GONE  # a claim from before claims named their holder
        if holder == self.holder:
            return Holder.ME
        try:
            await self.kv.get(holder)
        except (KeyNotFoundError, KeyDeletedError):
            pass
        else:
            self._missing_since.pop(holder, None)
            return Holder.ALIVE
        first = self._missing_since.setdefault(holder, self._clock())
        if self._clock() - first >= self.ttl:
            self._missing_since.pop(holder, None)
            return Holder.GONE
        return Holder.SUSPECT
