"""What this poller has handed to NATS: one schedule per message id, and ids already due.

Kept in memory and rebuilt from the stream at start-up, so a restarted poller
replaces or removes the schedules its predecessor made and never publishes an
id to `wasched.due` twice (the stream keeps due messages for 30 days; the
duplicate window alone covers only 15 minutes).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from faststream.nats import NatsBroker, Schedule
from faststream.nats.publisher.usecase import LogicPublisher
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from wasched.common import topology
from wasched.common.clock import TimeFormatError, parse_utc
from wasched.common.events import DueMessage

log = logging.getLogger("wasched.poller.book")

SCAN_BATCH = 500
PUBLISH_TIMEOUT = 5.0
_AT = "@at "


class Book:
    def __init__(self, broker: NatsBroker, js: JetStreamContext, due: LogicPublisher) -> None:
        self.broker, self.js, self._due = broker, js, due
        self.schedules: dict[str, datetime] = {}
        self.dispatched: set[str] = set()

    def tracked(self) -> set[str]:
        return set(self.schedules) | self.dispatched

    async def rebuild(self) -> None:
        self.schedules = await self._scan_schedules()
        self.dispatched = await self._scan_dispatched()
        log.info(
            "found %d schedules and %d dispatched ids in NATS",
            len(self.schedules),
            len(self.dispatched),
        )

    async def dispatch(self, due: DueMessage) -> bool:
        """Publish to wasched.due; False when NATS had it already (duplicate window)."""
        ack = await self._due.publish(
            due.to_json(), headers=topology.msg_id_header("due", due.id), timeout=PUBLISH_TIMEOUT
        )
        self.dispatched.add(due.id)
        if due.id in self.schedules:
            await self.unschedule(due.id)
        return not ack.duplicate

    async def schedule(self, due: DueMessage, at: datetime) -> None:
        """Create or replace the one schedule of this id (republishing replaces it)."""
        await self.broker.publish(
            due.to_json(),
            topology.schedule_subject(due.id),
            stream=topology.STREAM,
            timeout=PUBLISH_TIMEOUT,
            schedule=Schedule(time=at, target=topology.FIRE),
        )
        self.schedules[due.id] = at

    async def unschedule(self, message_id: str) -> None:
        await self.js.purge_stream(topology.STREAM, subject=topology.schedule_subject(message_id))
        self.schedules.pop(message_id, None)

    def fired(self, message_id: str, at: datetime) -> None:
        """NATS removes a schedule once it fired; forget it unless it was replaced since."""
        if self.schedules.get(message_id) == at:
            del self.schedules[message_id]

    def forget(self, message_id: str) -> None:
        """The id is settled (or cancelled): it needs no more tracking."""
        self.dispatched.discard(message_id)

    async def _scan_schedules(self) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        pattern = f"{topology.SCHED_PREFIX}*"
        for msg in await self._scan(pattern, DeliverPolicy.LAST_PER_SUBJECT):
            ident = message_id_of(msg.subject)
            at = schedule_time(msg.headers or {})
            if ident is not None and at is not None:
                found[ident] = at
        return found

    async def _scan_dispatched(self) -> set[str]:
        prefix = "due:"
        ids = set()
        for msg in await self._scan(topology.DUE, DeliverPolicy.ALL):
            msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
            if msg_id.startswith(prefix):
                ids.add(msg_id.removeprefix(prefix))
        return ids

    async def _scan(self, subject: str, policy: DeliverPolicy) -> list[Msg]:
        """Headers of the stream's messages on `subject`, via a short-lived ephemeral consumer."""
        config = ConsumerConfig(
            deliver_policy=policy,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            mem_storage=True,
            inactive_threshold=30.0,
        )
        sub = await self.js.pull_subscribe(subject, stream=topology.STREAM, config=config)
        info = await sub.consumer_info()
        found: list[Msg] = []
        try:
            remaining = info.num_pending or 0
            while remaining > 0:
                try:
                    batch = await sub.fetch(min(SCAN_BATCH, remaining), timeout=5)
                except TimeoutError:
                    break  # the rest aged out or was purged meanwhile
                found += batch
                remaining = batch[-1].metadata.num_pending if batch else 0
        finally:
            await sub.unsubscribe()
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(topology.STREAM, info.name)
        return found


def message_id_of(subject: str) -> str | None:
    try:
        return bytes.fromhex(subject.removeprefix(topology.SCHED_PREFIX)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def schedule_time(headers: dict[str, str]) -> datetime | None:
    value = headers.get("Nats-Schedule", "")
    if not value.startswith(_AT):
        return None
    try:
        return parse_utc(value.removeprefix(_AT))
    except TimeFormatError:
        return None
