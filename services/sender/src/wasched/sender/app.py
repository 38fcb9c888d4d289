"""The sender's FastStream app: one NatsBroker, the pair request handler, and the runtime.

The broker owns the NATS connection. `Runtime.start` runs after the broker has
connected (FastStream's `after_startup`), `Runtime.stop` before it disconnects
(`on_shutdown`), so the last outcome and the final status still go out.
The send consumers are nats-py pull subscriptions on that connection (see
`worker.py` for why); they are documented in AsyncAPI through `docs/sender.md`.
"""

from __future__ import annotations

import asyncio
import logging

from faststream import FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from faststream.specification import AsyncAPI

from wasched.common import topology
from wasched.common.events import (
    DueMessage,
    Heartbeat,
    Outcome,
    Receipt,
    Reply,
    SenderStatus,
    SendRequest,
)
from wasched.common.settings import LogFormat, Transport
from wasched.sender import pace, pairing
from wasched.sender.account import Account
from wasched.sender.config import SenderSettings, load_sender_settings
from wasched.sender.connection import Connection, Limits, Stopping, StreamReplaced, TakeOver
from wasched.sender.dryrun import DryrunTransport
from wasched.sender.flow import Flow, Parts
from wasched.sender.journal import Journal
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.liveness import Liveness, new_holder_id
from wasched.sender.lookups import CACHE_MAX_BYTES, Lookups
from wasched.sender.receipts import ReceiptIndex, open_index_bucket, publish_receipts
from wasched.sender.records import Records
from wasched.sender.status import Stats, StatusReporter
from wasched.sender.transport import ReceiptSeen
from wasched.sender.transport import Transport as TransportProtocol
from wasched.sender.whatsapp import NeonizeTransport
from wasched.sender.worker import Sender

log = logging.getLogger("wasched.sender")


def make_transport(settings: SenderSettings) -> TransportProtocol:
    if settings.whatsapp_transport is Transport.DRYRUN:
        return DryrunTransport(
            settings.dryrun_outbox,
            not_on_whatsapp=settings.not_on_whatsapp,
            send_delay=settings.dryrun_send_delay_seconds,
        )
    return NeonizeTransport(
        settings.whatsapp_session,
        proxy=settings.whatsapp_proxy,
        bot_tag=settings.neonize_bot_tag,
        show_qr=settings.log_format is LogFormat.TEXT,
        go_log_level=logging.INFO if settings.log_level == "DEBUG" else logging.WARNING,
        probe_seconds=settings.whatsapp_probe_seconds,
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

    def __init__(self, settings: SenderSettings, broker: NatsBroker) -> None:
        self.settings = settings
        self.broker = broker
        self.transport = make_transport(settings)
        self.stats = Stats()
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
        self._transport_started = False
        self._marked_replaced = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        settings, replicas = self.settings, self.settings.nats_replicas
        nc = await self.broker.connect()
        js = nc.jetstream()
        kv, _ = await topology.declare(js, replicas)
        senders_kv = await topology.bucket(
            js, topology.SENDERS_BUCKET, ttl=settings.sender_liveness_seconds, replicas=replicas
        )
        account_kv = await topology.bucket(js, topology.ACCOUNT_BUCKET, replicas=replicas)
        lookup_kv = await topology.bucket(
            js,
            topology.LOOKUP_BUCKET,
            ttl=settings.lookup_cache_seconds,
            max_bytes=CACHE_MAX_BYTES,
            replicas=replicas,
        )
        self._index = ReceiptIndex(await open_index_bucket(js))
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
        parts = Parts(
            kv=kv,
            records=Records(kv, journal),
            liveness=liveness,
            lookups=Lookups(lookup_kv, account, self.transport, pace_limits(settings)),
            account=account,
            index=self._index,
            transport=self.transport,
            lifecycle=self.lifecycle,
        )
        flow = Flow(parts, settings, pace_limits(settings), self.stats, asyncio.Event())
        self._sender = Sender(nc=nc, flow=flow, settings=settings)
        await self._sender.start()
        await self._connect_whatsapp(account)
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


def build_app(settings: SenderSettings) -> tuple[FastStream, Runtime]:
    broker = NatsBroker(
        settings.nats_servers,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        logger=logging.getLogger("wasched.sender.broker"),
        log_level=logging.DEBUG,
    )
    runtime = Runtime(settings, broker)

    @broker.subscriber(
        topology.PAIR_REQUEST,
        title="wasched.pair",
        description='`{"phone": "447..."}` → `Reply` with the 8-character pair code in `id`.',
    )
    async def on_pair(message: NatsMessage) -> bytes:
        return await runtime.pair(message.body)

    @broker.subscriber(
        topology.TAKE_OVER_REQUEST,
        title=topology.TAKE_OVER_REQUEST,
        description="Take the WhatsApp session back after another client replaced it "
        "(`wasched pair --take-over`) → `Reply`.",
    )
    async def on_take_over(message: NatsMessage) -> bytes:
        return (await runtime.take_over()).to_json()

    _document_publishers(broker)
    spec = AsyncAPI(
        title="wasched sender",
        description="Sends due messages on WhatsApp at most once; see docs/sender.md.",
    )
    app = FastStream(
        broker, after_startup=[runtime.start], on_shutdown=[runtime.stop], specification=spec
    )
    runtime.app = app
    return app, runtime


def _document_publishers(broker: NatsBroker) -> None:
    """AsyncAPI entries for what the sender publishes (it publishes through nats-py)."""
    for subject, schema, text in (
        (topology.OUTCOME, Outcome, "One per message: sent/failed/expired/cancelled."),
        (topology.RECEIPT, Receipt, "WhatsApp reported a sent message delivered/read/played."),
        (topology.SENDER_STATUS, SenderStatus, "Connection state, on change and every 5 s."),
        (topology.heartbeat_subject("sender"), Heartbeat, "Sender heartbeat (core NATS)."),
    ):
        broker.publisher(subject, schema=schema, description=text)


def docs_app() -> FastStream:
    """The AsyncAPI view: `faststream docs gen --factory wasched.sender.app:docs_app`.

    It adds the two consumers as FastStream subscribers so their payloads are
    documented; this app is only for documentation and is never run.
    """
    app, runtime = build_app(load_sender_settings(_env_file=None))
    broker = runtime.broker
    stream = JStream(topology.STREAM, declare=False)

    @broker.subscriber(
        topology.DUE,
        stream=stream,
        durable=topology.SENDER_DUE,
        pull_sub=PullSub(batch_size=1),
        description="A pending message whose time has come (from the poller). "
        "Sent at most once per id; the outcome goes to wasched.outcome.",
    )
    async def due(message: DueMessage) -> None: ...

    @broker.subscriber(
        topology.SEND,
        stream=stream,
        durable=topology.SENDER_SEND,
        pull_sub=PullSub(batch_size=1),
        description="Send now, from another system; `id` optional (generated when missing). "
        f"With header `{topology.REPLY_HEADER}: <inbox>` the caller gets a Reply there.",
    )
    async def send(message: SendRequest) -> None: ...

    return app
