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
import sys
from datetime import datetime

from faststream import FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from faststream.specification import AsyncAPI
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from wasched.common import topology
from wasched.common.connect import broker_options
from wasched.common.events import (
    DueMessage,
    Heartbeat,
    Outcome,
    Receipt,
    SenderStatus,
    SendRequest,
)
from wasched.common.messages import Status
from wasched.common.settings import LogFormat, Transport
from wasched.sender import pairing
from wasched.sender.config import SenderSettings, load_sender_settings
from wasched.sender.connection import Connection, Limits, Stopping
from wasched.sender.dryrun import DryrunTransport
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.receipts import ReceiptIndex, open_index_bucket, publish_receipts
from wasched.sender.status import Stats, StatusReporter
from wasched.sender.throttle import Throttle
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
        show_qr=settings.log_format is LogFormat.TEXT
        and (settings.log_pairing or sys.stdout.isatty()),
        log_qr=settings.log_format is LogFormat.JSON and settings.log_pairing,
        go_log_level=logging.INFO if settings.log_level == "DEBUG" else logging.WARNING,
    )


def limits(settings: SenderSettings) -> Limits:
    return Limits(
        connect_attempts=settings.whatsapp_connect_attempts,
        connect_backoff=settings.whatsapp_connect_backoff_seconds,
        replaced_backoff=settings.whatsapp_replaced_backoff_seconds,
        pairing_window=settings.whatsapp_pairing_window_seconds,
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
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        nc = await self.broker.connect()
        js = nc.jetstream()
        kv, _ = await topology.declare(js, self.settings.nats_replicas)
        throttle = Throttle(
            min_gap=self.settings.send_min_gap_seconds,
            max_jitter=self.settings.send_jitter_seconds,
            max_per_hour=self.settings.send_max_per_hour,
        )
        last = await last_send(js)
        if last is not None:
            throttle.record(last)  # a restart does not reset the gap to the previous send
        self._index = ReceiptIndex(await open_index_bucket(js))
        self._reporter = StatusReporter(
            nc, self.transport.name, self.stats, interval=self.settings.status_interval_seconds
        )
        self._spawn(self._reporter.run())
        self._spawn(self.lifecycle.run_ticks())
        self._sender = Sender(
            nc=nc,
            kv=kv,
            index=self._index,
            transport=self.transport,
            lifecycle=self.lifecycle,
            throttle=throttle,
            settings=self.settings,
            stats=self.stats,
        )
        await self._sender.start()
        await self.transport.start(self.lifecycle)
        log.info(
            "sender started: %s transport, min gap %gs (+ up to %gs jitter), at most %s per hour",
            self.transport.name,
            self.settings.send_min_gap_seconds,
            self.settings.send_jitter_seconds,
            self.settings.send_max_per_hour or "unlimited",
        )

    async def stop(self) -> None:
        log.info("shutting down")
        if self._sender is not None:
            await self._sender.stop(self.settings.sender_shutdown_grace_seconds)
        self.lifecycle.connection_event(Stopping())
        self.clean_stop = await self.transport.stop(timeout=10.0) is not False
        await self.lifecycle.close()
        if self._reporter is not None:
            await self._reporter.flush()
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


async def last_send(js: JetStreamContext) -> datetime | None:
    """When the newest outcome on the stream was sent, if it is a `sent` one."""
    try:
        raw = await js.get_last_msg(topology.STREAM, topology.OUTCOME)
    except NotFoundError:
        return None
    try:
        outcome = Outcome.model_validate_json(raw.data or b"")
    except ValidationError:
        return None
    return outcome.sent_at if outcome.status is Status.SENT else None


def build_app(settings: SenderSettings) -> tuple[FastStream, Runtime]:
    broker = NatsBroker(
        settings.nats_servers,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        logger=logging.getLogger("wasched.sender.broker"),
        log_level=logging.DEBUG,
        **broker_options(settings, "sender"),
    )
    runtime = Runtime(settings, broker)

    @broker.subscriber(
        topology.PAIR_REQUEST,
        title="wasched.pair",
        description='`{"phone": "447..."}` → `Reply` with the 8-character pair code in `id`.',
    )
    async def on_pair(message: NatsMessage) -> bytes:
        return await runtime.pair(message.body)

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
        stream=JStream(topology.IN_STREAM, declare=False),
        durable=topology.SENDER_SEND,
        pull_sub=PullSub(batch_size=1),
        description="Send now, from another system; `id` optional (generated when missing). "
        f"With header `{topology.REPLY_HEADER}: <inbox>` the caller gets a Reply there.",
    )
    async def send(message: SendRequest) -> None: ...

    return app
