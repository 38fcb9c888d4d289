"""The poller: keep NATS in step with the stored schedule, on time; write outcomes back.

One instance is active (it holds the lease); it polls the document, hands due
messages to `wasched.due` and near ones to JetStream schedules, re-checks each
schedule when it fires, and saves outcomes. Decisions come from `plan`,
`merge` and `intake`; this module performs them and reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from wasched.common import ledger, topology
from wasched.common.clock import format_display, utcnow
from wasched.common.document import Document, DocumentError, PatchResult, append_message
from wasched.common.events import CancelRequest, DueMessage, Outcome, Reply, ScheduleRequest
from wasched.common.ledger import LedgerEntry
from wasched.common.messages import Status
from wasched.common.recipients import mask
from wasched.common.settings import Settings
from wasched.common.store import (
    ScheduleStore,
    Snapshot,
    StoreAuthError,
    StoreConflict,
    StoreUnavailable,
    open_store,
)
from wasched.poller import intake
from wasched.poller.batcher import Batcher
from wasched.poller.book import Book
from wasched.poller.connection import safe_url
from wasched.poller.heartbeat import PollerState, heartbeat
from wasched.poller.lease import Lease, Renewal, lease_ttl, new_holder_id
from wasched.poller.merge import Event, apply_events, vouch
from wasched.poller.outputs import Outputs
from wasched.poller.plan import Action, Limits, Step, decide_fire, plan

log = logging.getLogger("wasched.poller")

LEDGER_READS_AT_ONCE = 16
NATS_ERRORS = (NatsError, TimeoutError, OSError)
STORE_RETRY = (StoreUnavailable, StoreConflict, DocumentError)


class RetryLater(Exception):
    """Not done now (S3 or the document unusable): the NATS message is nak'd and comes back."""


@dataclass(slots=True)
class Runtime:
    """Everything opened at start-up; the app's lifespan owns and closes it."""

    store: ScheduleStore
    ledger: KeyValue
    mirror: ledger.LedgerMirror
    lease: Lease
    book: Book


class Poller:
    def __init__(
        self,
        settings: Settings,
        broker: NatsBroker,
        outputs: Outputs,
        exit: Callable[[int], None],
    ) -> None:
        self.settings, self.broker, self.outputs, self._exit = settings, broker, outputs, exit
        self.limits = Limits.from_settings(settings)
        self.interval = settings.poll_interval_seconds
        self.holder = new_holder_id()
        self.state = PollerState()
        self.fires: Batcher[DueMessage, bool] = Batcher(self._check_fires, expected=(RetryLater,))
        self.events: Batcher[Event, None] = Batcher(self._save_events, expected=(RetryLater,))
        self._store: ScheduleStore | None = None
        self._rt: Runtime | None = None
        self._store_lock = asyncio.Lock()
        self._work_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def rt(self) -> Runtime:
        assert self._rt is not None, "poller not started"
        return self._rt

    # -- life cycle --------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with open_store(self.settings) as store:
            self._store = store
            yield

    async def startup(self) -> None:
        """Probe S3 (bad credentials end here), connect, declare, then wait for the lease."""
        assert self._store is not None
        store = self._store
        await self._probe_store(store)
        nc = await self._connect()
        js = nc.jetstream()
        ledger_kv, lease_kv = await topology.declare(js, self.settings.nats_replicas)
        lease = Lease(lease_kv, self.holder, lease_ttl(self.interval))
        await self._wait_for_lease(lease)
        self._tasks.append(asyncio.create_task(self._renew_loop(lease), name="lease"))
        book = Book(self.broker, js, self.outputs.due)
        await book.rebuild()
        mirror = ledger.LedgerMirror(ledger_kv)
        await mirror.start()
        self._rt = Runtime(store=store, ledger=ledger_kv, mirror=mirror, lease=lease, book=book)
        self.state.active = True
        log.info(
            "active: polling s3://%s/%s every %gs, scheduling up to %gs ahead",
            store.bucket,
            store.key,
            self.interval,
            self.settings.schedule_horizon_seconds,
        )

    async def after_startup(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="poll"))

    async def shutdown(self) -> None:
        """Finish the cycle or write in progress, then hand the lease over."""
        self._stopping.set()
        self._wake.set()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for sub in self.broker.subscribers:  # waits for handlers in flight (graceful_timeout)
            await sub.stop()
        if self._rt is not None:
            await self._rt.mirror.stop()
            await self._rt.lease.release()
        log.info("stopped")

    async def _probe_store(self, store: ScheduleStore) -> None:
        try:
            await store.detect_conditional_writes()
        except StoreUnavailable as exc:
            log.warning("S3 not reachable yet (%s); will keep trying", exc)
            self.state.failed(str(exc), reachable=False)
        self.state.store_mode = store.mode

    async def _connect(self) -> NATS:
        where = safe_url(self.settings.nats_url)
        delay = 0.5
        while True:
            try:
                return await self.broker.connect()
            except NATS_ERRORS as exc:
                log.warning("NATS not reachable at %s (%s); retrying in %gs", where, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _wait_for_lease(self, lease: Lease) -> None:
        announced = False
        while True:
            try:
                if await lease.try_acquire():
                    if announced:
                        log.info("took over from %s", lease.other)
                    return
            except NATS_ERRORS as exc:
                log.warning("could not read the lease: %s", exc)
            if not announced:
                log.info(
                    "standby: %s is active; taking over if it stops renewing for %gs",
                    lease.other,
                    lease.ttl,
                )
                announced = True
            await self._publish_heartbeat()
            await asyncio.sleep(lease.ttl / 4)

    async def _renew_loop(self, lease: Lease) -> None:
        unreachable = False
        while not self._stopping.is_set():
            await self._pause(lease.ttl / 4, wake=False)
            if self._stopping.is_set():
                return
            result = await lease.renew()
            if result is Renewal.LOST:
                self.state.active = False
                log.error("another poller took the lease; stopping so that only one is active")
                self._exit(3)
                return
            if result is Renewal.UNREACHABLE and not unreachable:
                log.warning("could not renew the lease (NATS unreachable?); retrying")
            elif result is Renewal.RENEWED and unreachable:
                log.info("lease renewed again")
            unreachable = result is Renewal.UNREACHABLE

    async def _poll_loop(self) -> None:
        paused = False
        while not self._stopping.is_set():
            started = time.monotonic()
            if self.rt.lease.fresh():
                if paused:
                    log.info("lease renewed; dispatching again")
                paused = False
                await self._guarded_cycle()
            elif not paused:
                paused = True
                log.warning("lease not renewed lately (NATS unreachable?); not dispatching")
            self.state.cycle_seconds = time.monotonic() - started
            await self._publish_heartbeat()
            await self._pause(self.interval)

    async def _guarded_cycle(self) -> None:
        try:
            await self.cycle()
        except StoreAuthError as exc:
            self._fatal(exc)
        except NATS_ERRORS as exc:
            log.warning("NATS unreachable (%r); retrying next cycle", exc)
            self.state.failed(f"NATS unreachable: {exc!r}")
        except Exception as exc:
            log.exception("poll failed: %s", exc)
            self.state.failed(f"poll failed: {exc}")

    async def _pause(self, seconds: float, *, wake: bool = True) -> None:
        event = self._wake if wake else self._stopping
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        if wake and not self._stopping.is_set():
            self._wake.clear()

    def _fatal(self, exc: Exception) -> None:
        log.error("%s; stopping (check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET)", exc)
        self._exit(1)

    # -- the poll ----------------------------------------------------------------------------

    async def cycle(self) -> None:
        rt = self.rt
        try:
            snap = await self._load()
        except StoreUnavailable as exc:
            log.warning("%s; retrying next cycle", exc)
            self.state.failed(str(exc), reachable=False)
            return
        except DocumentError as exc:
            log.error(
                "%s; %s left as it is, nothing is written until it is fixed", exc, rt.store.key
            )
            self.state.failed(str(exc))
            return
        self.state.etag_hit = not snap.changed
        log.info(
            "loaded %d messages (%s)",
            len(snap.doc.messages),
            "changed" if snap.changed else "unchanged",
        )
        async with self._work_lock:
            now = utcnow()
            keys = [k for k, raw in snap.doc.keyed() if k and raw.get("status") == Status.PENDING]
            entries = rt.mirror.view(keys)  # no per-id reads: a 100k schedule polls in O(1) RTTs
            result = plan(
                snap.doc,
                entries,
                dispatched=rt.book.dispatched,
                tracked=rt.book.tracked(),
                now=now,
                limits=self.limits,
            )
            restores, _ = await self._execute(result.steps)
        if restores:
            await self._restore(restores)
        self.state.counts = result.counts
        self.state.scheduled_in_nats = len(rt.book.schedules)
        self.state.store_mode = rt.store.mode
        self.state.succeeded(now)

    async def _load(self) -> Snapshot:
        async with self._store_lock:
            return await self.rt.store.load()

    async def _ledger_view(self, keys: Iterable[str]) -> dict[str, LedgerEntry]:
        gate = asyncio.Semaphore(LEDGER_READS_AT_ONCE)

        async def one(key: str) -> tuple[str, LedgerEntry | None]:
            async with gate:
                found = await ledger.read(self.rt.ledger, key)
            return key, found[0] if found else None

        pairs = await asyncio.gather(*(one(k) for k in set(keys)))
        return {key: entry for key, entry in pairs if entry is not None}

    async def _execute(self, steps: list[Step]) -> tuple[list[Outcome], set[str]]:
        """Perform each step; returns outcomes to restore and the keys that failed (NATS)."""
        tally: Counter[str] = Counter()
        restores: list[Outcome] = []
        failed: set[str] = set()
        for step in steps:
            try:
                restore = await self._perform(step, tally)
            except NATS_ERRORS as exc:
                failed.add(step.key)
                log.warning("could not %s message %s: %r", step.action.value, step.key, exc)
                continue
            if restore is not None:
                restores.append(restore)
        _log_tally(tally)
        return restores, failed

    async def _perform(self, step: Step, tally: Counter[str]) -> Outcome | None:
        book, key = self.rt.book, step.key
        action = step.action
        if action is Action.DISPATCH:
            due = step.due_message()
            if await book.dispatch(due):
                tally["dispatched"] += 1
                log.info(
                    "message %s for %s due %s → wasched.due",
                    key,
                    mask(due.to),
                    self._wall(due),
                )
            return None
        if action is Action.SCHEDULE:
            assert step.at is not None
            if book.schedules.get(key) != step.at:
                await book.schedule(step.due_message(), step.at)
                tally["scheduled"] += 1
            return None
        if key in book.schedules:
            await book.unschedule(key)
        if action in {Action.EXPIRE, Action.REJECT, Action.DUPLICATE}:
            return await self._settle(step, tally)
        if action is Action.RESTORE:
            return step.outcome
        elif action is Action.CANCEL:
            winner = await ledger.cancel(self.rt.ledger, key)
            book.forget(key)
            if winner.state is ledger.LedgerState.CANCELLED:
                tally["cancelled"] += 1
                log.info("message %s was deleted or cancelled; it will not be sent", key)
        elif action is Action.DROP:
            book.forget(key)
        return None

    async def _settle(self, step: Step, tally: Counter[str]) -> Outcome | None:
        """Record the poller's own verdict in the ledger first, so no sender can send it."""
        outcome = step.outcome
        assert outcome is not None
        ours = LedgerEntry.from_outcome(outcome)
        winner = await ledger.record_final(self.rt.ledger, step.key, ours)
        if winner != ours:
            return winner.outcome(step.key) if winner.is_final else None
        if step.message is not None:  # the status page shows the recipient, masked
            outcome = outcome.model_copy(update={"to": step.message.to})
        await self._publish_outcome(outcome)
        tally["expired" if outcome.status is Status.EXPIRED else "invalid"] += 1
        log.warning("message %s %s: %s", step.key, outcome.status.value, outcome.error)
        return None

    async def _publish_outcome(self, outcome: Outcome) -> None:
        await self.outputs.outcome.publish(
            outcome.to_json(),
            headers=topology.msg_id_header("outcome", f"{outcome.id}:{outcome.status.value}"),
            timeout=5.0,
        )

    # -- fires -------------------------------------------------------------------------------

    async def fire(self, fired: DueMessage) -> None:
        """A schedule fired; raises RetryLater when the document cannot be checked now."""
        if not await self.fires.submit(fired):
            raise RetryLater(f"could not forward message {fired.id}")

    async def _check_fires(self, fired: list[DueMessage]) -> list[bool]:
        """One conditional GET for all fires that arrived together."""
        rt = self.rt
        async with self._work_lock:
            try:
                snap = await self._load()
            except (StoreUnavailable, DocumentError) as exc:
                log.warning(
                    "cannot check %d fired message(s) against the schedule: %s", len(fired), exc
                )
                raise RetryLater(str(exc)) from exc
            now = utcnow()
            index = snap.doc.by_key()
            try:
                entries = await self._ledger_view(f.id for f in fired)
            except NATS_ERRORS as exc:
                raise RetryLater(f"ledger unreadable: {exc!r}") from exc
            steps = []
            for item in fired:
                rt.book.fired(item.id, item.scheduled_time)
                steps.append(
                    decide_fire(
                        item,
                        index.get(item.id),
                        entries.get(item.id),
                        dispatched=item.id in rt.book.dispatched,
                        now=now,
                        limits=self.limits,
                    )
                )
            restores, failed = await self._execute(steps)
        if restores:
            await self._restore(restores)
        return [item.id not in failed for item in fired]

    # -- outcomes ----------------------------------------------------------------------------

    async def save(self, event: Event) -> None:
        """Persist one outcome or receipt (batched with others); RetryLater if S3 said no."""
        await self.events.submit(event)

    async def _save_events(self, events: list[Event]) -> list[None]:
        try:
            entries = await self._ledger_view(e.id for e in events)
        except NATS_ERRORS as exc:
            raise RetryLater(f"ledger unreadable: {exc!r}") from exc
        backed = []
        for event in events:
            checked = vouch(event, entries.get(event.id))
            if checked is None:
                self._unbacked(event)
            else:
                backed.append(checked)
        try:
            result = await self._write(backed)
        except StoreAuthError as exc:
            self._fatal(exc)
            raise RetryLater(str(exc)) from exc
        except STORE_RETRY as exc:
            log.warning("could not save %d outcome(s): %s; will retry", len(events), exc)
            self.state.failed(str(exc), reachable=not isinstance(exc, StoreUnavailable))
            raise RetryLater(str(exc)) from exc
        if result.changed:
            log.info(
                "saved %d outcome%s", len(result.changed), "" if len(result.changed) == 1 else "s"
            )
        for key in result.missing:
            log.warning("outcome for %s: no such message in the schedule (deleted?); dropped", key)
        for key in result.skipped:
            log.info("outcome for %s ignored: the message is already settled", key)
        return [None] * len(events)

    def _unbacked(self, event: Event) -> None:
        subject = topology.OUTCOME if isinstance(event, Outcome) else topology.RECEIPT
        self.count_rejected(subject)
        log.warning(
            "ignored a %s for %s: the ledger has no send or verdict for it", subject, event.id
        )

    async def _restore(self, outcomes: list[Outcome]) -> None:
        try:
            result = await self._write(outcomes)
        except StoreAuthError as exc:
            self._fatal(exc)
            return
        except STORE_RETRY as exc:
            log.warning(
                "could not restore %d outcome(s): %s; next poll retries", len(outcomes), exc
            )
            return
        if result.changed:
            log.info(
                "restored %d outcome(s) from the ledger: %s",
                len(result.changed),
                ", ".join(result.changed),
            )

    async def _write(self, events: list[Event] | list[Outcome]) -> PatchResult:
        if not events:
            return PatchResult()
        box: list[PatchResult] = []

        def mutate(doc: Document) -> bool:
            box[:] = [apply_events(doc, events)]
            return bool(box[0])

        async with self._store_lock:
            await self.rt.store.update(mutate)
        return box[0]

    # -- requests ----------------------------------------------------------------------------

    async def add_message(self, request: ScheduleRequest) -> Reply:
        """`wasched.schedule`: add to the document (Rejected / RetryLater otherwise)."""
        new = intake.new_message(request, utcnow())
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

        try:
            async with self._store_lock:
                await self.rt.store.update(mutate)
        except STORE_RETRY as exc:
            raise RetryLater(str(exc)) from exc
        if verdicts[0] is intake.Admission.ADD:
            log.info("added message %s for %s (wasched.schedule)", request.id, mask(request.to))
            self._wake.set()
        return Reply(ok=True, id=request.id)

    async def cancel_message(self, request: CancelRequest) -> Reply:
        """`wasched.cancel`: the ledger first (then no sender can send it), then the document."""
        try:
            return await self._cancel(request.id)
        except NATS_ERRORS as exc:
            raise RetryLater(f"NATS: {exc!r}") from exc

    async def _cancel(self, key: str) -> Reply:
        async with self._work_lock:
            try:
                snap = await self._load()
            except STORE_RETRY as exc:
                raise RetryLater(str(exc)) from exc
            intake.cancel_verdict(snap.doc.by_key().get(key), key)
            winner = await ledger.cancel(self.rt.ledger, key)
            refusal = intake.cancel_refusal(winner, key)
            if refusal is not None:
                raise intake.Rejected(refusal)
            if key in self.rt.book.schedules:
                await self.rt.book.unschedule(key)
            self.rt.book.forget(key)
            await self._publish_outcome(
                Outcome(id=key, status=Status.CANCELLED, error="cancelled on request")
            )
        log.info("message %s cancelled (wasched.cancel)", key)
        return Reply(ok=True, id=key)

    # -- reporting ---------------------------------------------------------------------------

    async def _publish_heartbeat(self) -> None:
        store = self._store
        errors = store.stats.errors if store is not None else {}
        beat = heartbeat(self.state, errors, utcnow())
        with suppress(*NATS_ERRORS):
            await self.outputs.heartbeat.publish(beat.to_json())

    def count_rejected(self, subject: str) -> None:
        self.state.rejected[subject] += 1

    def _wall(self, due: DueMessage) -> str:
        return format_display(due.scheduled_time, self.settings.zone)


def _log_tally(tally: Counter[str]) -> None:
    if tally["dispatched"]:
        log.info("dispatched %d due", tally["dispatched"])
    if tally["scheduled"]:
        log.info("scheduled %d for later", tally["scheduled"])
