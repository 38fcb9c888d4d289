"""One poll: read the schedule, decide on every message, carry the decisions out.

Reading and deciding are one step under the work lock, so a poll never acts on a
copy of the schedule older than one a fire check already acted on. A missing,
empty or unreadable schedule is unavailable, not empty: nothing is decided,
cancelled or recorded until it is readable again, and the heartbeat says why.
Parsing and planning run in a thread, so lease renewals and heartbeats keep their
pace while a 100k-message schedule is worked through. The plan is kept between polls
(`index.PlanIndex`): a poll decides again only what changed or what time changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from wasched.common.clock import utcnow
from wasched.common.document import Document, DocumentError
from wasched.common.store import Snapshot, StoreUnavailable
from wasched.poller.counts import Ignored
from wasched.poller.heartbeat import SERIES_IN_HEARTBEAT
from wasched.poller.index import PlanIndex
from wasched.poller.plan import Plan
from wasched.poller.runtime import Runtime
from wasched.poller.steps import Executor
from wasched.poller.writes import Writer

log = logging.getLogger("wasched.poller")


class PollCycle:
    def __init__(self, rt: Runtime, executor: Executor, writer: Writer) -> None:
        self.rt, self.executor, self.writer = rt, executor, writer
        self.index = PlanIndex(rt.limits)

    async def run(self) -> None:
        rt = self.rt
        started = time.process_time()
        async with rt.work:
            read_at = utcnow()
            snap = await self._load()
            if snap is None:
                return
            result = await self._plan(snap.doc, read_at)
            self._name(result.ignored)
            done = await self.executor.run(result.steps)
            self.index.settle(done.failed)
        rt.state.cycle_cpu_seconds = time.process_time() - started
        rt.state.decided = len(result.steps)
        rt.state.mirror_entries = len(rt.mirror)
        rt.state.mirror_bytes = rt.mirror.stored_bytes
        if done.restores:
            await self.writer.restore(done.restores)
        if rt.store.pending_repairs:
            await self.writer.repair()
        rt.state.counts = result.counts
        rt.state.series = result.series[:SERIES_IN_HEARTBEAT]
        rt.state.scheduled_in_nats = len(rt.book.schedules)
        rt.state.store_mode = rt.store.mode
        rt.state.store_versioning = rt.store.versioning
        rt.state.succeeded(utcnow())

    async def _plan(self, doc: Document, now: datetime) -> Plan:
        """Decide again what changed since the last poll (in a thread: the first poll of a
        100k schedule decides on every message). The mirror and the book are only read
        there, one id at a time; what changes meanwhile is taken at the next poll.

        `now` is when the read began: the copy is at least that fresh. A schedule the plan
        overtakes (`plan._when`, `fire_grace`) was overdue before the read, so the copy is
        as fresh as its fire's check would have read; a slow read (its answer held up past
        a fire) never overtakes the fire."""
        rt = self.rt
        changed = rt.mirror.take_changed() | rt.book.take_changed()
        try:
            return await asyncio.to_thread(
                self.index.refresh,
                doc,
                rt.mirror,
                handed=rt.book.dispatched,
                schedules=rt.book.schedules,
                changed=changed,
                now=now,
                ledgered=rt.mirror.occurrences,
            )
        except BaseException:
            self.index = PlanIndex(rt.limits)  # half-updated: decide on everything next time
            raise

    async def _load(self) -> Snapshot | None:
        rt = self.rt
        try:
            async with rt.store_lock:
                snap = await rt.store.load()
        except StoreUnavailable as exc:
            log.warning("%s; retrying next cycle", exc)
            rt.state.failed(str(exc), reachable=False)
            return None
        except DocumentError as exc:
            log.error(
                "schedule unavailable: %s; nothing is sent, cancelled or written until it is "
                "readable again",
                exc,
            )
            rt.state.unavailable(str(exc), utcnow())
            return None
        rt.state.etag_hit = not snap.changed
        log.info(
            "loaded %d messages (%s)",
            len(snap.doc.messages),
            "changed" if snap.changed else "unchanged",
        )
        return snap

    def _name(self, ignored: list[Ignored]) -> None:
        """Each message left alone is named once in the log (the heartbeat counts them)."""
        named = self.rt.state.named
        for item in ignored:
            if (item.where, item.reason) not in named:
                named.add((item.where, item.reason))
                log.warning("%s", item.text)
