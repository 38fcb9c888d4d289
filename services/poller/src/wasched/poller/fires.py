"""When a schedule fires: re-read the schedule, then forward, move, or drop the message.

All fires that arrive together share one conditional GET. A fire is never forwarded
unchecked: while S3 is unreachable or the schedule is missing, empty or unreadable,
it is nak'd and comes back (0.5 s, 1 s, 2 s, ... at most a poll interval apart). The
fire of a series' occurrence decides the whole series again (`recurring`): the
occurrence goes out if it is still one and still due, and the next ones are scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from wasched.common.clock import utcnow
from wasched.common.document import DocumentError, JsonObject
from wasched.common.events import DueMessage
from wasched.common.ledger import LedgerEntry
from wasched.common.recurrence import occurrence_id
from wasched.common.store import StoreUnavailable
from wasched.poller import recurring
from wasched.poller.batcher import Batcher
from wasched.poller.fence import Deposed, LeaseStale
from wasched.poller.history import series_target
from wasched.poller.occurrences import by_series, known_for
from wasched.poller.plan import Step, decide_fire
from wasched.poller.runtime import NATS_ERRORS, RetryLater, Runtime
from wasched.poller.steps import Done, Executor
from wasched.poller.writes import Writer

log = logging.getLogger("wasched.poller")


class FireChecks:
    def __init__(self, rt: Runtime, executor: Executor, writer: Writer) -> None:
        self.rt, self.executor, self.writer = rt, executor, writer
        self.batch: Batcher[DueMessage, bool] = Batcher(self._check, expected=(RetryLater,))

    async def fire(self, fired: DueMessage) -> None:
        """A schedule fired; raises RetryLater when the schedule cannot be checked now."""
        self.rt.book.firing.add(fired.id)  # not overdue (`Book.overdue`): it came
        if not await self.batch.submit(fired):
            raise RetryLater(f"could not forward message {fired.id}")

    async def _check(self, fired: list[DueMessage]) -> list[bool]:
        rt = self.rt
        try:
            async with rt.work:
                done = await self._decide(fired)
        except (LeaseStale, Deposed) as exc:
            if isinstance(exc, Deposed):
                rt.deposed()
            raise RetryLater(str(exc)) from exc
        if done.restores:
            await self.writer.restore(done.restores)
        return [item.id not in done.failed for item in fired]

    async def _decide(self, fired: list[DueMessage]) -> Done:
        rt = self.rt
        try:
            async with rt.store_lock:
                snap = await rt.store.load()
        except (StoreUnavailable, DocumentError) as exc:
            log.warning(
                "cannot check %d fired message(s) against the schedule: %s", len(fired), exc
            )
            raise RetryLater(str(exc)) from exc
        index = await asyncio.to_thread(snap.doc.by_key)  # 100k keys: not on the event loop
        series: dict[str, set[datetime]] = {}
        for item in fired:
            if (target := series_target(item.id, index)) is not None:
                series.setdefault(target[0], set()).add(target[1])
        occurrence_ids = {occurrence_id(k, at) for k, ats in series.items() for at in ats}
        try:
            entries = await self.writer.ledger_view([*(f.id for f in fired), *series])
        except NATS_ERRORS as exc:
            raise RetryLater(f"ledger unreadable: {exc!r}") from exc
        now = utcnow()
        steps: list[Step] = []
        for item in fired:
            rt.book.fired(item.id, item.scheduled_time)
            if item.id in occurrence_ids:
                continue
            steps.append(
                decide_fire(
                    item,
                    index.get(item.id),
                    entries.get(item.id),
                    handed=rt.book.handed_one(item.id),
                    now=now,
                    limits=rt.limits,
                )
            )
        for key, instants in series.items():
            steps += self._series(key, instants, index[key], entries, now)
        return await self.executor.run(steps)

    def _series(
        self,
        key: str,
        instants: set[datetime],
        raw: JsonObject,
        entries: dict[str, LedgerEntry],
        now: datetime,
    ) -> list[Step]:
        """Fired occurrences of one series: the mirror's entries of its other occurrences,
        and the latest ledger entries of these."""
        rt = self.rt
        ledgered = rt.mirror.occurrences(key)
        for at in instants:
            if (fresh := entries.get(occurrence_id(key, at))) is not None:
                ledgered[at] = fresh
        handed, schedules = rt.book.handed(), dict(rt.book.schedules)
        known = known_for(key, ledgered, handed, schedules, by_series([*handed, *schedules]))
        return recurring.decide_fire(
            key, instants, raw, entries.get(key), known, now=now, limits=rt.limits
        )
