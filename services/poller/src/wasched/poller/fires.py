"""When a schedule fires: re-read the schedule, then forward, move, or drop the message.

All fires that arrive together share one conditional GET. A fire is never forwarded
unchecked: while S3 is unreachable or the schedule is missing, empty or unreadable,
it is nak'd and comes back (0.5 s, 1 s, 2 s, ... at most a poll interval apart).
"""

from __future__ import annotations

import asyncio
import logging

from wasched.common.clock import utcnow
from wasched.common.document import DocumentError
from wasched.common.events import DueMessage
from wasched.common.store import StoreUnavailable
from wasched.poller.batcher import Batcher
from wasched.poller.fence import Deposed, LeaseStale
from wasched.poller.plan import decide_fire
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
        try:
            entries = await self.writer.ledger_view(f.id for f in fired)
        except NATS_ERRORS as exc:
            raise RetryLater(f"ledger unreadable: {exc!r}") from exc
        index = await asyncio.to_thread(snap.doc.by_key)  # 100k keys: not on the event loop
        now = utcnow()
        steps = []
        for item in fired:
            rt.book.fired(item.id, item.scheduled_time)
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
        return await self.executor.run(steps)
