"""One poll: read the schedule, decide on every message, carry the decisions out.

Reading and deciding are one step under the work lock, so a poll never acts on a
copy of the schedule older than one a fire check already acted on. A missing,
empty or unreadable schedule is unavailable, not empty: nothing is decided,
cancelled or recorded until it is readable again, and the heartbeat says why.
Parsing and planning run in a thread, so lease renewals and heartbeats keep their
pace while a 100k-message schedule is worked through.
"""

from __future__ import annotations

import asyncio
import logging

from wasched.common.clock import utcnow
from wasched.common.document import DocumentError
from wasched.common.store import Snapshot, StoreUnavailable
from wasched.poller.counts import Ignored
from wasched.poller.heartbeat import SERIES_IN_HEARTBEAT
from wasched.poller.plan import Plan, plan
from wasched.poller.reading import series_keys
from wasched.poller.runtime import Runtime
from wasched.poller.steps import Executor
from wasched.poller.writes import Writer

log = logging.getLogger("wasched.poller")


class PollCycle:
    def __init__(self, rt: Runtime, executor: Executor, writer: Writer) -> None:
        self.rt, self.executor, self.writer = rt, executor, writer

    async def run(self) -> None:
        rt = self.rt
        async with rt.work:
            snap = await self._load()
            if snap is None:
                return
            now = utcnow()
            keys = [k for k, _ in snap.doc.keyed() if k]
            handed = rt.book.handed()
            entries = rt.mirror.view([*keys, *handed])  # no per-id reads: O(1) RTTs a poll
            series = series_keys(snap.doc)
            result: Plan = await asyncio.to_thread(
                plan,
                snap.doc,
                entries,
                handed=handed,
                schedules=dict(rt.book.schedules),
                now=now,
                limits=rt.limits,
                ledgered={k: rt.mirror.occurrences(k) for k in series},
            )
            self._name(result.ignored)
            done = await self.executor.run(result.steps)
        if done.restores:
            await self.writer.restore(done.restores)
        if rt.store.pending_repairs:
            await self.writer.repair()
        rt.state.counts = result.counts
        rt.state.series = result.series[:SERIES_IN_HEARTBEAT]
        rt.state.scheduled_in_nats = len(rt.book.schedules)
        rt.state.store_mode = rt.store.mode
        rt.state.store_versioning = rt.store.versioning
        rt.state.succeeded(now)

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
