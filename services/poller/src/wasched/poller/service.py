"""The poller: keep NATS in step with the stored schedule, on time; write outcomes back.

One instance is active (it holds the lease and has begun a fenced term); a standby
waits. This module owns the life cycle and the loops (lease renewal, polls,
heartbeats); the work itself is in `cycle` (a poll), `fires` (a schedule fired),
`writes` (outcomes, receipts, restores) and `requests` (other systems' requests),
which all carry out decisions made by the pure `plan`, `merge` and `intake`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime

from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS

from wasched.common import ledger, topology
from wasched.common.clock import utcnow
from wasched.common.events import CancelRequest, DueMessage, Reply, ScheduleRequest
from wasched.common.mirror import LedgerMirror
from wasched.common.settings import Settings
from wasched.common.store import ScheduleStore, StoreAuthError, StoreUnavailable, open_store
from wasched.common.waits import wait_event
from wasched.poller.book import Book
from wasched.poller.connection import safe_url
from wasched.poller.cycle import PollCycle
from wasched.poller.fence import Deposed, Fence, LeaseStale
from wasched.poller.fires import FireChecks
from wasched.poller.heartbeat import HEARTBEAT_SECONDS, PollerState, heartbeat
from wasched.poller.lease import Lease, Renewal, lease_ttl, new_holder_id
from wasched.poller.merge import Event
from wasched.poller.outputs import Outputs
from wasched.poller.plan import Limits
from wasched.poller.requests import Requests
from wasched.poller.runtime import NATS_ERRORS, RetryLater, Runtime
from wasched.poller.steps import Executor
from wasched.poller.writes import Writer

__all__ = ["Poller", "RetryLater"]

log = logging.getLogger("wasched.poller")
FIRE_WATCH_SECONDS = 0.25
"""How often the schedules are checked for one NATS did not fire (`Limits.fire_grace`)."""
REHEARSING = (
    "REHEARSAL (WHATSAPP_TRANSPORT=dryrun): the schedule is read and never written; outcomes "
    "go to the sender's outbox and the logs only, requests from other systems are left for "
    "the real run (DRYRUN_MODE=record: a dry run over a schedule of its own)"
)


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
        self._store: ScheduleStore | None = None
        self._rt: Runtime | None = None
        self._cycle: PollCycle | None = None
        self._fires: FireChecks | None = None
        self._writer: Writer | None = None
        self._requests: Requests | None = None
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
        lane = topology.lane(self.settings.rehearsal)
        ledger_kv, lease_kv = await topology.declare(js, self.settings.nats_replicas, lane)
        self._tasks.append(asyncio.create_task(self._beat_loop(), name="heartbeat"))
        lease = Lease(lease_kv, self.holder, lease_ttl(self.interval), key=lane.lease_key)
        await self._wait_for_lease(lease)
        fence = Fence(js, lease, lane.term)
        term = await fence.begin()
        self._tasks.append(asyncio.create_task(self._renew_loop(lease), name="lease"))
        book = Book(self.broker, js, self.outputs.due, fence, lane)
        await book.rebuild()
        mirror = LedgerMirror(js, bucket=lane.ledger_bucket)
        await mirror.start()
        for key in list(book.dispatched):  # gated by a predecessor: hand over again if wanted
            entry = mirror.get(key)
            if entry is not None and entry.state is ledger.LedgerState.SUPERSEDED:
                book.regated(key)
        store.guard = fence.confirm
        self._rt = Runtime(
            settings=self.settings,
            limits=self.limits,
            store=store,
            ledger=ledger_kv,
            mirror=mirror,
            lease=lease,
            fence=fence,
            book=book,
            outputs=self.outputs,
            state=self.state,
            wake=self._wake.set,
            deposed=self._deposed,
        )
        executor = Executor(self._rt)
        self._writer = writer = Writer(self._rt, self._fatal)
        self._cycle = PollCycle(self._rt, executor, writer)
        self._fires = FireChecks(self._rt, executor, writer)
        self._requests = Requests(self._rt, executor, writer)
        self.state.active = True
        log.info(
            "active: polling s3://%s/%s every %gs, scheduling up to %gs ahead (term %d)",
            store.bucket,
            store.key,
            self.interval,
            self.settings.schedule_horizon_seconds,
            term,
        )
        if lane.rehearsal:
            log.warning(REHEARSING)

    async def after_startup(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="poll"))
        self._tasks.append(asyncio.create_task(self._fire_watch_loop(), name="fire watch"))

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
        self.state.store_versioning = store.versioning

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
            await asyncio.sleep(lease.ttl / 4)

    async def _renew_loop(self, lease: Lease) -> None:
        unreachable = False
        while not self._stopping.is_set():
            await self._pause(lease.ttl / 4, wake=False)
            if self._stopping.is_set():
                return
            result = await lease.renew()
            if result is Renewal.LOST:
                self._step_down("another poller took the lease")
                return
            if result is Renewal.UNREACHABLE and not unreachable:
                log.warning("could not renew the lease (NATS unreachable?); retrying")
            elif result is Renewal.RENEWED and unreachable:
                log.info("lease renewed again")
            unreachable = result is Renewal.UNREACHABLE

    async def _poll_loop(self) -> None:
        paused = False
        cycle = self._cycle
        assert cycle is not None
        while not self._stopping.is_set():
            started = time.monotonic()
            if self.rt.lease.fresh():
                if paused:
                    log.info("lease renewed; dispatching again")
                paused = False
                await self._guarded(cycle.run)
            elif not paused:
                paused = True
                log.warning("lease not renewed lately (NATS unreachable?); not dispatching")
            self.state.cycle_seconds = time.monotonic() - started
            await self._publish_heartbeat()
            await self._pause(self.interval)

    async def _fire_watch_loop(self) -> None:
        """A schedule NATS has not fired `fire_grace` after its time wakes a poll, which hands
        the message over itself (`plan._when`). Each overdue schedule wakes one poll: one that
        stays (S3 unreachable) waits for the next regular poll."""
        woken: datetime | None = None
        while not self._stopping.is_set():
            await self._pause(FIRE_WATCH_SECONDS, wake=False)
            latest = self.rt.book.overdue(utcnow() - self.limits.fire_grace)
            if latest is not None and (woken is None or latest > woken):
                woken = latest
                self._wake.set()

    async def _beat_loop(self) -> None:
        """Every few seconds, active or standby: a probe hears it whatever the poll interval."""
        while not self._stopping.is_set():
            await self._publish_heartbeat()
            await self._pause(HEARTBEAT_SECONDS, wake=False)

    async def _guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except StoreAuthError as exc:
            self._fatal(exc)
        except LeaseStale as exc:
            log.warning("%s; waiting for the lease to be renewed", exc)
        except Deposed as exc:
            self._step_down(str(exc))
        except NATS_ERRORS as exc:
            log.warning("NATS unreachable (%r); retrying next cycle", exc)
            self.state.failed(f"NATS unreachable: {exc!r}")
        except Exception as exc:
            log.exception("poll failed: %s", exc)
            self.state.failed(f"poll failed: {exc}")

    async def _pause(self, seconds: float, *, wake: bool = True) -> None:
        await wait_event(self._wake if wake else self._stopping, seconds)
        if wake and not self._stopping.is_set():
            self._wake.clear()

    def _fatal(self, exc: Exception) -> None:
        log.error("%s; stopping (check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET)", exc)
        self._exit(1)

    def _deposed(self) -> None:
        self._step_down("another poller began a term; this one is no longer active")

    def _step_down(self, why: str) -> None:
        if self.state.active:
            self.state.active = False
            log.error("%s; stopping so that only one is active", why)
        self._exit(3)

    # -- what the consumers call ---------------------------------------------------------------

    async def fire(self, fired: DueMessage) -> None:
        """A schedule fired (RetryLater: nak it)."""
        assert self._fires is not None
        await self._fires.fire(fired)

    async def save(self, event: Event) -> None:
        """An outcome or receipt to write (RetryLater: nak it)."""
        assert self._writer is not None
        await self._writer.save(event)

    async def add_message(self, request: ScheduleRequest) -> Reply:
        assert self._requests is not None
        return await self._requests.add_message(request)

    async def cancel_message(self, request: CancelRequest) -> Reply:
        assert self._requests is not None
        return await self._requests.cancel_message(request)

    def count_rejected(self, subject: str) -> None:
        self.state.rejected[subject] += 1

    # -- reporting ---------------------------------------------------------------------------

    async def _publish_heartbeat(self) -> None:
        store = self._store
        errors = store.stats.errors if store is not None else {}
        repairs = store.stats.repairs if store is not None else 0
        beat = heartbeat(self.state, errors, utcnow(), repairs)
        with suppress(*NATS_ERRORS):
            await self.outputs.heartbeat.publish(beat.to_json())
