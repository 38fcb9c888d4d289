"""The sender's runtime: every part, started after the broker connects, stopped before it closes.

It builds the send path (ledger, liveness, journal, account pace, lookups; see flow.py),
keeps the connection life cycle (lifecycle.py), and carries the account's state over
restarts: a temporary ban feeds the ramp, and "replaced" is remembered in NATS so that a
restarted sender does not take the session back until an operator says so.
"""

from __future__ import annotations

import asyncio
import logging

from faststream import FastStream
from faststream.nats import NatsBroker

from wasched.common import topology
from wasched.common.events import Reply
from wasched.sender import pace, pairing
from wasched.sender.account import Account
from wasched.sender.attempt import Parts
from wasched.sender.capabilities import startup_lines, unavailable_media
from wasched.sender.config import SenderSettings
from wasched.sender.connection import Connection, Limits, Stopping, StreamReplaced, TakeOver
from wasched.sender.content import Contents, Fetchers
from wasched.sender.flow import Flow
from wasched.sender.journal import Journal
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.liveness import Liveness, new_holder_id
from wasched.sender.lookups import CACHE_MAX_BYTES, Lookups
from wasched.sender.receipts import ReceiptIndex, open_index_bucket, publish_receipts
from wasched.sender.records import Records
from wasched.sender.status import Stats, StatusReporter
from wasched.sender.transport import ReceiptSeen
from wasched.sender.transport import Transport as TransportProtocol
from wasched.sender.worker import Sender

log = logging.getLogger("wasched.sender")
REHEARSING = (
    "REHEARSAL (WHATSAPP_TRANSPORT=dryrun): sends go to the outbox and the log only; the "
    "ledger, pace, number lookups and outcomes are the rehearsal's own, and wasched.send "
    "requests are left for the real run (DRYRUN_MODE=record: a dry run over a schedule of "
    "its own)"
)


def limits(settings: SenderSettings) -> Limits:
    return Limits(
        connect_attempts=settings.whatsapp_connect_attempts,
        connect_backoff=settings.whatsapp_connect_backoff_seconds,
        pairing_window=settings.whatsapp_pairing_window_seconds,
        dead_restart=max(60.0, 3 * settings.whatsapp_probe_seconds),
    )


def pace_limits(settings: SenderSettings) -> pace.Limits:
    return pace.Limits(
        min_gap=settings.send_min_gap_seconds,
        per_hour=settings.send_max_per_hour,
        per_day=settings.send_max_per_day,
        ramp=settings.send_ramp_seconds,
        lookup_gap=settings.lookup_min_gap_seconds,
        lookup_per_hour=settings.lookup_max_per_hour,
        lookup_backoff=settings.lookup_backoff_seconds,
        same_text_max=settings.send_same_text_max_recipients,
        same_text_window=settings.send_same_text_window_seconds,
    )


class Runtime:
    """Everything the sender runs, started after the broker connects and stopped before it closes."""

    def __init__(
        self, settings: SenderSettings, broker: NatsBroker, transport: TransportProtocol
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.transport = transport
        self.stats = Stats(rehearsal=settings.rehearsal)
        self.exit_code = 0
        self.clean_stop = True
        self.stopping = False
        self.app: FastStream | None = None
        self.lifecycle = Lifecycle(
            self.transport,
            limits(settings),
            on_change=self._changed,
            on_receipt=self._receipt,
            on_exit=self._exit,
        )
        self._reporter: StatusReporter | None = None
        self._sender: Sender | None = None
        self._index: ReceiptIndex | None = None
        self._account: Account | None = None
        self._liveness: Liveness | None = None
        self._fetchers = Fetchers(settings, settings.fetch_limits)
        self._transport_started = False
        self._marked_replaced = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        settings, replicas = self.settings, self.settings.nats_replicas
        nc = await self.broker.connect()
        js = nc.jetstream()
        lane = topology.lane(settings.rehearsal)  # a rehearsal's ledger, pace and lookups
        kv, _ = await topology.declare(js, replicas, lane)
        senders_kv = await topology.bucket(
            js, topology.SENDERS_BUCKET, ttl=settings.sender_liveness_seconds, replicas=replicas
        )
        account_kv = await topology.bucket(js, lane.account_bucket, replicas=replicas)
        lookup_kv = await topology.bucket(
            js,
            lane.lookup_bucket,
            ttl=settings.lookup_cache_seconds,
            max_bytes=CACHE_MAX_BYTES,
            replicas=replicas,
        )
        self._index = ReceiptIndex(await open_index_bucket(js, replicas))
        self._account = account = Account(account_kv)
        holder = new_holder_id()
        self._liveness = liveness = Liveness(senders_kv, holder, settings.sender_liveness_seconds)
        await liveness.beat()
        self._spawn(liveness.run())
        journal = Journal(settings.journal_path)
        journal.load()
        self.stats.journal_pending = lambda: len(journal.pending)
        self._reporter = StatusReporter(
            nc, self.transport.name, self.stats, interval=settings.status_interval_seconds
        )
        self._spawn(self._reporter.run())
        self._spawn(self.lifecycle.run_ticks())
        unavailable = unavailable_media(self.transport.name)
        for line in startup_lines(unavailable):
            (log.warning if unavailable else log.info)("%s", line)
        parts = Parts(
            kv=kv,
            records=Records(kv, journal),
            liveness=liveness,
            lookups=Lookups(lookup_kv, account, self.transport, pace_limits(settings)),
            account=account,
            index=self._index,
            transport=self.transport,
            lifecycle=self.lifecycle,
            contents=Contents(self._fetchers, unavailable),
        )
        flow = Flow(parts, settings, pace_limits(settings), self.stats, asyncio.Event())
        self._sender = Sender(nc=nc, flow=flow, settings=settings)
        await self._sender.start()
        await self._connect_whatsapp(account)
        if settings.rehearsal:
            log.warning(REHEARSING)
        log.info(
            "sender started: %s transport, min gap %gs (+ up to %gs jitter), at most %s an "
            "hour and %s a day (instance %s)",
            self.transport.name,
            settings.send_min_gap_seconds,
            settings.send_jitter_seconds,
            settings.send_max_per_hour or "unlimited",
            settings.send_max_per_day or "unlimited",
            holder,
        )

    async def _connect_whatsapp(self, account: Account) -> None:
        """Connect, unless another client took the session and nobody said to take it back."""
        since = await account.replaced()
        if since and self.settings.whatsapp_take_over:
            log.warning("WHATSAPP_TAKE_OVER is set: taking the WhatsApp session back")
            await account.clear_replaced()
            since = None
        if since:
            self._marked_replaced = True
            self.lifecycle.connection_event(StreamReplaced(since))
            return
        self._transport_started = True
        await self.transport.start(self.lifecycle)

    async def take_over(self) -> Reply:
        """The operator takes the session back (`wasched pair --take-over`)."""
        if self._account is None:
            return Reply(ok=False, error="the sender is still starting")
        state = self.lifecycle.conn.state
        if state != "replaced":
            return Reply(ok=False, error=f"nothing to take over: WhatsApp is {state}")
        await self._account.clear_replaced()
        self._marked_replaced = False
        log.warning("taking the WhatsApp session back, as the operator asked")
        if self._transport_started:
            self.lifecycle.connection_event(TakeOver())
        else:
            self._transport_started = True
            await self.transport.start(self.lifecycle)
        return Reply(ok=True)

    async def stop(self) -> None:
        self.stopping = True
        log.info("shutting down")
        if self._sender is not None:
            await self._sender.stop(self.settings.sender_shutdown_grace_seconds)
        self.lifecycle.connection_event(Stopping())
        self.clean_stop = await self.transport.stop(timeout=10.0) is not False
        await self.lifecycle.close()
        try:
            await self._fetchers.close()
        except Exception as exc:
            log.warning("closing the media fetcher failed: %s", exc)
        if self._reporter is not None:
            await self._reporter.flush()
        if self._liveness is not None:
            await self._liveness.leave()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info("sender stopped")

    async def pair(self, data: bytes) -> bytes:
        reply = await pairing.answer(data, self.lifecycle, self.transport)
        if reply.ok:
            log.info("pair code issued")
        else:
            log.info("pair request refused: %s", reply.error)
        return reply.to_json()

    def _changed(self, conn: Connection) -> None:
        if self._reporter is not None:
            self._reporter.changed(conn)
        if conn.state == "replaced" and not self._marked_replaced and self._account is not None:
            self._marked_replaced = True
            self._spawn(self._keep(self._account.mark_replaced(), "the replaced mark"))
        if conn.state == "banned" and conn.until is not None and self._account is not None:
            until = conn.until
            update = self._account.change(lambda s: pace.after_ban(s, until))
            self._spawn(self._keep(update, "the ban"))

    async def _keep(self, write: object, what: str) -> None:
        try:
            await write  # type: ignore[misc]
        except Exception as exc:
            log.warning("could not store %s in NATS: %s", what, exc)

    def _receipt(self, seen: ReceiptSeen) -> None:
        if self._index is not None:
            self._spawn(self._publish_receipts(seen))

    async def _publish_receipts(self, seen: ReceiptSeen) -> None:
        assert self._index is not None
        try:
            await publish_receipts(self.broker.config.connection_state.stream, self._index, seen)
        except Exception as exc:
            log.warning("publishing a %s receipt failed: %s", seen.kind, exc)

    def _exit(self, code: int, reason: str) -> None:
        self.exit_code = code
        if self.app is not None:
            self.app.exit()

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
