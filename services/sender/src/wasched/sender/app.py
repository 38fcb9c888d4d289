"""The sender's FastStream app: one NatsBroker, the pair and take-over handlers, the runtime.

The broker owns the NATS connection. `Runtime.start` runs after the broker has
connected (FastStream's `after_startup`), `Runtime.stop` before it disconnects
(`on_shutdown`), so the last outcome and the final status still go out.
The send consumers are nats-py pull subscriptions on that connection (see
`worker.py` for why); they are documented in AsyncAPI through `docs/sender.md`.
"""

from __future__ import annotations

import logging
import sys

from faststream import FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from faststream.specification import AsyncAPI

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
from wasched.common.settings import LogFormat, Transport
from wasched.sender.config import SenderSettings, load_sender_settings
from wasched.sender.dryrun import DryrunTransport
from wasched.sender.runtime import Runtime
from wasched.sender.transport import Transport as TransportProtocol
from wasched.sender.whatsapp import NeonizeTransport

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
        probe_seconds=settings.whatsapp_probe_seconds,
    )


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
    runtime = Runtime(settings, broker, make_transport(settings))

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
        stream=JStream(topology.IN_STREAM, declare=False),
        durable=topology.SENDER_SEND,
        pull_sub=PullSub(batch_size=1),
        description="Send now, from another system; `id` optional (generated when missing). "
        f"With header `{topology.REPLY_HEADER}: <inbox>` the caller gets a Reply there.",
    )
    async def send(message: SendRequest) -> None: ...

    return app
