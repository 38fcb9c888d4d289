"""One active poller: a lease in the `wasched-lease` KV bucket, changed only by compare-and-set.

The standby trusts no clock but its own: it takes over when the lease's
revision has not moved for `ttl` seconds of its monotonic time, so clock skew
between hosts cannot cause two active pollers.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from nats.errors import Error as NatsError
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, Field

from wasched.common.clock import utcnow
from wasched.common.events import Event
from wasched.common.topology import POLLER_LEASE_KEY

MIN_TTL_SECONDS = 3.0


def lease_ttl(poll_interval: float) -> float:
    """About 2.5 poll intervals: a standby takes over within a few polls of the holder's death."""
    return max(2.5 * poll_interval, MIN_TTL_SECONDS)


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaseRecord(Event):
    holder: str
    renewed_at: AwareDatetime = Field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A lease revision and when (monotonic) this process first saw it."""

    revision: int
    since: float


def observe(revision: int | None, seen: Sighting | None, now: float) -> Sighting | None:
    if revision is None:
        return None
    if seen is not None and seen.revision == revision:
        return seen
    return Sighting(revision, now)


def may_take_over(
    revision: int | None, holder: str | None, me: str, seen: Sighting | None, now: float, ttl: float
) -> bool:
    """Free, ours, or unchanged for `ttl` seconds of our own time."""
    if revision is None or holder == me:
        return True
    if seen is None or seen.revision != revision:
        return False
    return now - seen.since >= ttl


class Renewal(StrEnum):
    RENEWED = "renewed"
    LOST = "lost"  # someone else holds it now: stop being active
    UNREACHABLE = "unreachable"  # NATS did not answer: try again, pause work when stale


class Lease:
    def __init__(
        self,
        kv: KeyValue,
        holder: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        key: str = POLLER_LEASE_KEY,
    ) -> None:
        self.kv, self.holder, self.ttl, self._clock = kv, holder, ttl, clock
        self.key = key
        """A rehearsal has a lease of its own: it never holds a real poller back."""
        self.revision: int | None = None
        self.renewed: float | None = None
        self.other: str | None = None
        self._seen: Sighting | None = None

    def fresh(self) -> bool:
        """Held and renewed within `ttl`: safe to act as the active poller."""
        return self.renewed is not None and self._clock() - self.renewed < self.ttl

    async def try_acquire(self) -> bool:
        now = self._clock()
        current = await self._read()
        revision = current[0] if current else None
        self.other = current[1].holder if current else None
        self._seen = observe(revision, self._seen, now)
        if not may_take_over(revision, self.other, self.holder, self._seen, now, self.ttl):
            return False
        value = LeaseRecord(holder=self.holder).to_json()
        try:
            if revision is None:
                self.revision = await self.kv.create(self.key, value)
            else:
                self.revision = await self.kv.update(self.key, value, last=revision)
        except KeyWrongLastSequenceError:
            self._seen = None  # another standby was quicker
            return False
        self.renewed = now
        return True

    async def renew(self) -> Renewal:
        now = self._clock()
        value = LeaseRecord(holder=self.holder).to_json()
        try:
            self.revision = await self.kv.update(self.key, value, last=self.revision)
        except KeyWrongLastSequenceError:
            return await self._recheck(now)
        except (NatsError, TimeoutError):
            return Renewal.UNREACHABLE
        self.renewed = now
        return Renewal.RENEWED

    async def _recheck(self, now: float) -> Renewal:
        """A renewal that timed out may still have landed (nats-py resends it after a
        reconnect): the lease is still ours if it names us."""
        try:
            current = await self._read()
        except (NatsError, TimeoutError):
            return Renewal.UNREACHABLE
        if current is not None and current[1].holder == self.holder:
            self.revision, self.renewed = current[0], now
            return Renewal.RENEWED
        self.renewed = None
        return Renewal.LOST

    async def release(self) -> None:
        """Hand over at once on a clean stop (compare-and-set: never delete someone else's)."""
        if self.revision is None:
            return
        try:
            await self.kv.delete(self.key, last=self.revision)
        except (KeyWrongLastSequenceError, NatsError, TimeoutError):
            return
        finally:
            self.revision, self.renewed = None, None

    async def _read(self) -> tuple[int, LeaseRecord] | None:
        try:
            entry = await self.kv.get(self.key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        return entry.revision, LeaseRecord.model_validate_json(entry.value)
