"""Everything the active poller's parts share: opened at start-up, owned by the app's lifespan.

The poll cycle, the fire checks, the writes and the requests each get this one
object; the two locks order their work: `work` makes reading the schedule and
deciding on it one step (a poll never acts on a copy older than a fire check's),
`store` serialises S3 requests and the store's cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from wasched.common import topology
from wasched.common.mirror import LedgerMirror
from wasched.common.settings import Settings
from wasched.common.store import ScheduleStore
from wasched.poller.book import Book
from wasched.poller.fence import Fence
from wasched.poller.heartbeat import PollerState
from wasched.poller.lease import Lease
from wasched.poller.outputs import Outputs
from wasched.poller.plan import Limits

NATS_ERRORS = (NatsError, TimeoutError, OSError)


class RetryLater(Exception):
    """Not done now (S3, NATS or the document unusable): the NATS message is nak'd and comes back."""


@dataclass(slots=True)
class Runtime:
    settings: Settings
    limits: Limits
    store: ScheduleStore
    ledger: KeyValue
    mirror: LedgerMirror
    lease: Lease
    fence: Fence
    book: Book
    outputs: Outputs
    state: PollerState
    wake: Callable[[], None]
    """Ask for a poll now (e.g. after a message was added)."""
    deposed: Callable[[], None]
    """Another poller began a term: stop being active (exit 3)."""
    work: asyncio.Lock = field(default_factory=asyncio.Lock)
    store_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def lane(self) -> topology.Lane:
        """A rehearsal's own NATS names (`Settings.rehearsal`), or the real ones."""
        return topology.lane(self.settings.rehearsal)
