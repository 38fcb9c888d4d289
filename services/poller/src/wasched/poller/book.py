"""What this poller has handed to NATS: one schedule per message id, and hand-overs to
`wasched.due` by id and content version.

Kept in memory and rebuilt from the stream at start-up, so a restarted poller
replaces or removes the schedules its predecessor made and never hands the same
version of an id over twice by accident (the stream keeps due messages for 30 days;
the duplicate window alone covers only 15 minutes). Every publish carries the
lease fence's headers, so an old leader's publishes are refused by the server.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
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
from wasched.poller.fence import Fence
from wasched.poller.plan import HandOver

log = logging.getLogger("wasched.poller.book")

SCAN_BATCH = 500
PUBLISH_TIMEOUT = 5.0
_AT = "@at "


@dataclass(frozen=True, slots=True)
class Handed(HandOver):
    """The last hand-over of an id, where it is in the stream, and every version handed."""

    seq: int | None = None
    versions: tuple[str | None, ...] = ()


class Book:
    def __init__(
        self,
        broker: NatsBroker,
        js: JetStreamContext,
        due: LogicPublisher,
        fence: Fence,
        lane: topology.Lane = topology.REAL,
    ) -> None:
        self.broker, self.js, self._due, self.fence, self.lane = broker, js, due, fence, lane
        self.schedules: dict[str, datetime] = {}
        self.firing: set[str] = set()
        """Ids whose schedule fired and whose fire is being checked (or will come back)."""
        self.dispatched: dict[str, Handed] = {}
        self.changed: set[str] = set()
        """Ids whose schedule or hand-over changed since the poll last took them."""

    def handed(self) -> dict[str, HandOver]:
        """A copy for the plan (which runs in a thread while outcomes change the book)."""
        return dict(self.dispatched)

    def handed_one(self, message_id: str) -> HandOver | None:
        return self.dispatched.get(message_id)

    def take_changed(self) -> set[str]:
        """The ids changed since the last call (the poll decides on them again)."""
        changed, self.changed = self.changed, set()
        return changed

    async def rebuild(self) -> None:
        self.schedules = await self._scan_schedules()
        self.dispatched = await self._scan_dispatched()
        self.changed |= self.schedules.keys() | self.dispatched.keys()
        log.info(
            "found %d schedules and %d dispatched ids in NATS",
            len(self.schedules),
            len(self.dispatched),
        )

    async def dispatch(self, due: DueMessage) -> bool:
        """Publish to wasched.due; False when NATS had it already (duplicate window)."""
        before = self.dispatched.get(due.id)
        versions = before.versions if before else ()
        again = versions.count(due.version) + 1 if due.version in versions else 0
        headers = {
            "Nats-Msg-Id": self.lane.due_msg_id(due.id, due.version, again),
            **self.fence.headers(),
        }
        ack = await self.fence.publish(
            self._due.publish(due.to_json(), headers=headers, timeout=PUBLISH_TIMEOUT)
        )
        self.dispatched[due.id] = Handed(due.version, False, ack.seq, (*versions, due.version))
        self.changed.add(due.id)
        if due.id in self.schedules:
            await self.unschedule(due.id)
        return not ack.duplicate

    def regated(self, message_id: str) -> None:
        """A gate was moved for this id: its hand-over may have been refused meanwhile."""
        found = self.dispatched.get(message_id)
        if found is not None and not found.regated:
            self.dispatched[message_id] = Handed(found.version, True, found.seq, found.versions)
            self.changed.add(message_id)

    async def schedule(self, due: DueMessage, at: datetime) -> None:
        """Create or replace the one schedule of this id (republishing replaces it)."""
        await self.fence.publish(
            self.broker.publish(
                due.to_json(),
                self.lane.schedule_subject(due.id),
                stream=topology.STREAM,
                headers=self.fence.headers(),
                timeout=PUBLISH_TIMEOUT,
                schedule=Schedule(time=at, target=self.lane.fire),
            )
        )
        self.schedules[due.id] = at
        self.changed.add(due.id)

    async def unschedule(self, message_id: str) -> None:
        self.fence.check()
        await self.js.purge_stream(topology.STREAM, subject=self.lane.schedule_subject(message_id))
        self.schedules.pop(message_id, None)
        self.changed.add(message_id)

    def overdue(self, before: datetime) -> datetime | None:
        """The latest time of the schedules that should have fired before `before` and whose
        fire has not come."""
        late = (at for key, at in self.schedules.items() if at < before and key not in self.firing)
        return max(late, default=None)

    def fired(self, message_id: str, at: datetime) -> None:
        """NATS removes a schedule once it fired; forget it unless it was replaced since."""
        self.firing.discard(message_id)
        if self.schedules.get(message_id) == at:
            del self.schedules[message_id]
            self.changed.add(message_id)

    def forget(self, message_id: str) -> None:
        """The id is settled (or cancelled): it needs no more tracking."""
        if self.dispatched.pop(message_id, None) is not None:
            self.changed.add(message_id)

    async def handed_over(self, message_id: str, version: str | None) -> DueMessage | None:
        """The hand-over of this version, read back from the stream (None: not known)."""
        found = self.dispatched.get(message_id)
        if found is None or found.seq is None or found.version != version:
            return None
        try:
            stored = await self.js.get_msg(topology.STREAM, found.seq)
        except NotFoundError:
            return None
        try:
            return DueMessage.model_validate_json(stored.data or b"")
        except ValueError:
            return None

    async def _scan_schedules(self) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        pattern = f"{self.lane.sched_prefix}*"
        for msg in await self._scan(pattern, DeliverPolicy.LAST_PER_SUBJECT):
            ident = message_id_of(msg.subject, self.lane.sched_prefix)
            at = schedule_time(msg.headers or {})
            if ident is not None and at is not None:
                found[ident] = at
        return found

    async def _scan_dispatched(self) -> dict[str, Handed]:
        found: dict[str, Handed] = {}
        for msg in await self._scan(self.lane.due, DeliverPolicy.ALL):
            parsed = self.lane.parse_due_msg_id((msg.headers or {}).get("Nats-Msg-Id", ""))
            if parsed is None:
                continue
            ident, version = parsed
            before = found.get(ident)
            versions = (*before.versions, version) if before else (version,)
            found[ident] = Handed(version, False, msg.metadata.sequence.stream, versions)
        return found

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


def message_id_of(subject: str, prefix: str = topology.SCHED_PREFIX) -> str | None:
    try:
        return bytes.fromhex(subject.removeprefix(prefix)).decode()
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
