"""Requests from other systems: `wasched.schedule` adds a message, `wasched.cancel` cancels one.

Verdicts come from `intake`; this module performs them. Adding to a schedule that does not
exist yet creates it (a first install), never over one that appeared meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from wasched.common import ledger
from wasched.common.clock import utcnow
from wasched.common.document import Document, DocumentError, append_message
from wasched.common.events import CancelRequest, Outcome, Reply, ScheduleRequest
from wasched.common.messages import Status
from wasched.common.recipients import mask
from wasched.common.store import StoreConflict, StoreError, StoreUnavailable
from wasched.poller import intake
from wasched.poller.fence import Deposed, LeaseStale
from wasched.poller.runtime import NATS_ERRORS, RetryLater, Runtime
from wasched.poller.steps import Executor
from wasched.poller.writes import Writer

log = logging.getLogger("wasched.poller")

STORE_RETRY = (StoreUnavailable, StoreConflict, DocumentError)


class Requests:
    def __init__(self, rt: Runtime, executor: Executor, writer: Writer) -> None:
        self.rt, self.executor, self.writer = rt, executor, writer

    async def add_message(self, request: ScheduleRequest) -> Reply:
        """`wasched.schedule`: add to the document (Rejected / RetryLater otherwise)."""
        limits = self.rt.limits
        new, reading = intake.admitted(request, utcnow(), limits.zone, limits.media_prefix)
        if reading.kinds is not None and reading.kinds.media is not None:
            await self._media_exists(request.id, reading.kinds.media.key)
        try:
            found = await ledger.read(self.rt.ledger, request.id)
        except NATS_ERRORS as exc:
            raise RetryLater(f"ledger unreadable: {exc!r}") from exc
        entry = found[0] if found else None
        verdicts: list[intake.Admission] = []

        def mutate(doc: Document) -> bool:
            verdicts[:] = [intake.admit(doc, new, entry)]
            if verdicts[0] is intake.Admission.ADD:
                append_message(doc, new)
                return True
            return False

        await self.writer.update(mutate, create=True)
        if verdicts[0] is intake.Admission.ADD:
            log.info("added message %s for %s (wasched.schedule)", request.id, mask(request.to))
            self.rt.wake()
        return Reply(ok=True, id=request.id)

    async def _media_exists(self, ident: str, key: str | None) -> None:
        """A media object named by `key` must be in the bucket before the message is added."""
        if key is None:
            return  # a URL: the sender fetches it at the message's time
        store = self.rt.store
        try:
            found = await store.exists(key)
        except StoreUnavailable as exc:
            raise RetryLater(str(exc)) from exc
        except StoreError as exc:
            raise intake.Rejected(
                f"message {ident!r}: media.key: cannot check {key!r}: {exc}"
            ) from None
        if not found:
            raise intake.Rejected(
                f"message {ident!r}: media.key: there is no object {key!r} in bucket "
                f"{store.bucket!r}; upload it first (wasched schedule add --media does)"
            )

    async def cancel_message(self, request: CancelRequest) -> Reply:
        """`wasched.cancel`: the ledger first (then no sender can send it), then the document."""
        try:
            return await self._cancel(request.id)
        except NATS_ERRORS as exc:
            raise RetryLater(f"NATS: {exc!r}") from exc
        except LeaseStale as exc:
            raise RetryLater(str(exc)) from exc
        except Deposed as exc:
            self.rt.deposed()
            raise RetryLater(str(exc)) from exc

    async def _cancel(self, key: str) -> Reply:
        rt = self.rt
        async with rt.work:
            try:
                async with rt.store_lock:
                    snap = await rt.store.load()
            except STORE_RETRY as exc:
                raise RetryLater(str(exc)) from exc
            index = await asyncio.to_thread(snap.doc.by_key)
            intake.cancel_verdict(index.get(key), key)
            rt.fence.check()
            winner = await ledger.cancel(rt.ledger, key)
            refusal = intake.cancel_refusal(winner, key)
            if refusal is not None:
                raise intake.Rejected(refusal)
            if key in rt.book.schedules:
                await rt.book.unschedule(key)
            rt.book.forget(key)
            await self.executor.publish_outcome(
                Outcome(id=key, status=Status.CANCELLED, error="cancelled on request")
            )
        log.info("message %s cancelled (wasched.cancel)", key)
        return Reply(ok=True, id=key)
