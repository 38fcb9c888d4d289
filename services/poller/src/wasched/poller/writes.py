"""Outcomes, receipts and restores written into the stored document.

Events from NATS are batched (one S3 write for many) and written only as far as the
ledger backs them (`merge.vouch`). Receipts are recorded in the ledger before the
document, so a stale writer that wipes them cannot make them disappear for good.
When a send began before the user changed the message, the hand-over it was built
from is read back from the stream, so the document can say what went out (`sentAs`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from nats.js.errors import KeyWrongLastSequenceError

from wasched.common import ledger, topology
from wasched.common.document import Document, DocumentError, PatchResult
from wasched.common.events import Outcome, Receipt
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import content_version
from wasched.common.store import Mutation, StoreAuthError, StoreConflict, StoreUnavailable
from wasched.poller.batcher import Batcher
from wasched.poller.fence import Deposed, LeaseStale
from wasched.poller.history import SeriesNote
from wasched.poller.merge import Event, Record, SentAs, apply_events, vouch, what_went
from wasched.poller.runtime import NATS_ERRORS, RetryLater, Runtime

log = logging.getLogger("wasched.poller")

LEDGER_READS_AT_ONCE = 16
STORE_RETRY = (StoreUnavailable, StoreConflict, DocumentError)
RECEIPT_TIME = {"delivered": "delivered_at", "read": "read_at", "played": "read_at"}


class Writer:
    def __init__(self, rt: Runtime, fatal: Callable[[Exception], None]) -> None:
        self.rt = rt
        self._fatal = fatal
        self.batch: Batcher[Event, None] = Batcher(self._save, expected=(RetryLater,))

    async def save(self, event: Event) -> None:
        """Persist one outcome or receipt (batched with others); RetryLater if not now."""
        await self.batch.submit(event)

    async def restore(self, events: Sequence[Record]) -> None:
        """Put back what the ledger knows (a stale writer wiped it); the next poll retries."""
        try:
            result = await self.write(events)
        except RetryLater as exc:
            log.warning("could not restore %d outcome(s): %s; next poll retries", len(events), exc)
            return
        if result.changed:
            changed = ", ".join(result.changed)
            if all(isinstance(e, SeriesNote) for e in events):
                log.info("updated the record of series %s (nextAt, history)", changed)
            else:
                log.info("restored %d outcome(s) from the ledger: %s", len(result.changed), changed)

    async def write(
        self, events: Sequence[Record], sent_as: dict[str, SentAs] | None = None
    ) -> PatchResult:
        """One conditional write of all events; RetryLater when S3 or the lease say not now.
        A rehearsal writes nothing: the schedule, and what it records, are the real run's."""
        if not events or self.rt.settings.rehearsal:
            return PatchResult()
        box: list[PatchResult] = []
        zone = self.rt.settings.zone

        def mutate(doc: Document) -> bool:
            box[:] = [apply_events(doc, events, sent_as, zone)]
            return bool(box[0])

        started = time.monotonic()
        writes = self.rt.store.stats.writes
        await self.update(mutate)
        if self.rt.store.stats.writes > writes:
            state = self.rt.state
            state.writes += 1
            state.last_write_events = len(events)
            state.last_write_seconds = time.monotonic() - started
        return box[0]

    async def repair(self) -> None:
        """Write back another writer's overwritten edits that a failed write left pending."""
        try:
            await self.update(None)
        except RetryLater as exc:
            log.warning("could not re-apply another writer's edits yet: %s; retrying", exc)

    async def update(self, mutate: Mutation | None, *, create: bool = False) -> None:
        """`store.update` (a pending repair only, for None); RetryLater when not now."""
        if self.rt.settings.rehearsal:
            raise RetryLater("a rehearsal never writes the schedule")
        store = self.rt.store
        try:
            async with self.rt.store_lock:
                if mutate is None:
                    await store.repair()
                else:
                    await store.update(mutate, create=create)
        except StoreAuthError as exc:
            self._fatal(exc)
            raise RetryLater(str(exc)) from exc
        except STORE_RETRY as exc:
            self.rt.state.failed(str(exc), reachable=not isinstance(exc, StoreUnavailable))
            raise RetryLater(str(exc)) from exc
        except LeaseStale as exc:
            raise RetryLater(str(exc)) from exc
        except Deposed as exc:
            self.rt.deposed()
            raise RetryLater(str(exc)) from exc

    async def _save(self, events: list[Event]) -> list[None]:
        try:
            entries = await self.ledger_view(e.id for e in events)
            backed = [await self._backed(e, entries.get(e.id)) for e in events]
            sent_as = await self._what_went([e for e in backed if isinstance(e, Outcome)])
        except NATS_ERRORS as exc:
            raise RetryLater(f"ledger unreadable: {exc!r}") from exc
        written = [e for e in backed if e is not None]
        try:
            result = await self.write(written, sent_as)
        except RetryLater as exc:
            log.warning("could not save %d outcome(s): %s; will retry", len(events), exc)
            raise
        if result.changed:
            n = len(result.changed)
            log.info("saved %d outcome%s", n, "" if n == 1 else "s")
        for key in result.missing:
            log.warning("outcome for %s: no such message in the schedule (deleted?); dropped", key)
        for key in result.skipped:
            log.info("outcome for %s not written: the message is settled or changed since", key)
        for event in written:
            if isinstance(event, Outcome):  # settled: no more tracking
                self.rt.book.forget(event.id)
        return [None] * len(events)

    async def _backed(self, event: Event, entry: LedgerEntry | None) -> Event | None:
        checked = vouch(event, entry)
        if checked is None:
            self._unbacked(event)
            return None
        if isinstance(checked, Outcome) and checked.version is None:
            handed = self.rt.book.handed_one(checked.id)  # a sender older than versions
            if handed is not None and handed.version is not None:
                checked = checked.model_copy(update={"version": handed.version})
        if isinstance(checked, Receipt) and entry is not None:
            await self._remember_receipt(checked, entry)
        return checked

    async def _remember_receipt(self, receipt: Receipt, entry: LedgerEntry) -> None:
        """Keep the first receipt time in the ledger's `sent` entry (compare-and-set)."""
        name = RECEIPT_TIME[receipt.kind]
        for _ in range(5):
            found = await ledger.read(self.rt.ledger, receipt.id)
            if found is None or found[0].state is not LedgerState.SENT:
                return
            current, revision = found
            if getattr(current, name) is not None:
                return
            updated = current.model_copy(update={name: receipt.at})
            try:
                await ledger.settle(self.rt.ledger, receipt.id, updated, revision)
                return
            except KeyWrongLastSequenceError:
                continue

    async def _what_went(self, outcomes: list[Outcome]) -> dict[str, SentAs]:
        """For outcomes of a version the document no longer holds: the hand-over they came from."""
        cached = self.rt.store.cached()
        if not outcomes or cached is None:
            return {}
        index = await asyncio.to_thread(cached.doc.by_key)  # 100k keys: not on the event loop
        found: dict[str, SentAs] = {}
        for outcome in outcomes:
            raw = index.get(outcome.id)
            if outcome.version is None or raw is None or content_version(raw) == outcome.version:
                continue
            due = await self.rt.book.handed_over(outcome.id, outcome.version)
            if due is not None:
                found[outcome.id] = what_went(due)
        return found

    def _unbacked(self, event: Event) -> None:
        subject = topology.OUTCOME if isinstance(event, Outcome) else topology.RECEIPT
        self.rt.state.rejected[subject] += 1
        log.warning(
            "ignored a %s for %s: the ledger has no send or verdict for it", subject, event.id
        )

    async def ledger_view(self, keys: Iterable[str]) -> dict[str, LedgerEntry]:
        """The latest entries (not the mirror's copy: these decide what is written)."""
        gate = asyncio.Semaphore(LEDGER_READS_AT_ONCE)

        async def one(key: str) -> tuple[str, LedgerEntry | None]:
            async with gate:
                found = await ledger.read(self.rt.ledger, key)
            return key, found[0] if found else None

        pairs = await asyncio.gather(*(one(k) for k in set(keys)))
        return {key: entry for key, entry in pairs if entry is not None}
