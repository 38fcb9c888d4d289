"""Wiring: one FastStream app for NATS, served with the HTTP side by uvicorn.

Outcomes and receipts come through durable pull consumers, acked only after
they are counted: a restart of this service neither loses nor re-counts them
(a redelivery after a lost ack is recognised by id). Heartbeats and the
sender status are core subjects: live state, nothing to persist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import uvicorn
from faststream import AckPolicy, FastStream
from faststream.exceptions import IncorrectState
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError
from starlette.applications import Starlette

from wasched.common import topology
from wasched.common.connect import broker_options, pull_inbox
from wasched.common.events import Event, Heartbeat, Outcome, Receipt, SenderStatus
from wasched.common.settings import Settings
from wasched.health import sources
from wasched.health.monitor import Monitor
from wasched.health.web import create_web

log = logging.getLogger("wasched.health")

E = TypeVar("E", bound=Event)
ACK_WAIT_SECONDS = 30.0


@dataclass
class HealthService:
    settings: Settings
    monitor: Monitor
    broker: NatsBroker
    stream_app: FastStream
    connection_log: ConnectionLog
    web: Starlette = field(init=False)
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    fatal: str | None = None
    on_fatal: Callable[[], None] = lambda: None

    async def connect(self) -> None:
        """Runs beside the HTTP side, so /ping and the page answer while NATS is away."""
        log.info("connecting to NATS at %s", _safe_url(self.settings.nats_url))
        try:
            await self.stream_app.start()
        except Exception as exc:
            self.fatal = f"cannot start on NATS: {exc}"
            log.error("%s", self.fatal)
            self.on_fatal()
            return
        log.info("listening on NATS")
        self.listening.set()

    async def disconnect(self) -> None:
        self.connection_log.closing = True
        try:
            await self.stream_app.stop()
        except Exception as exc:
            log.warning("while closing the NATS connection: %s", exc)

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self.connect(), name="nats-connect")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.disconnect()


class ConnectionLog:
    """One line per change of NATS reachability, not one per retry."""

    def __init__(self) -> None:
        self.failing = False
        self.closing = False

    async def error(self, exc: Exception) -> None:
        if not self.failing:
            log.warning("NATS: %s; retrying every second", exc or type(exc).__name__)
        self.failing = True

    async def disconnected(self) -> None:
        if not self.closing:
            log.warning("disconnected from NATS; reconnecting")

    async def reconnected(self) -> None:
        self.failing = False
        log.info("reconnected to NATS")


class Refusals:
    """Log a refused signal once a minute per subject (a flood must not flood the log)."""

    def __init__(self, every: float = 60.0) -> None:
        self.every, self._last = every, dict[str, float]()

    def note(self, subject: str, why: str) -> None:
        now = time.monotonic()
        if now - self._last.get(subject, -self.every) >= self.every:
            self._last[subject] = now
            log.warning("ignored a message on %s: %s", subject, why)


def parse(model: type[E], msg: NatsMessage) -> E | None:
    """Decode an event; a malformed one is logged (reason only, never the payload)."""
    try:
        return model.model_validate_json(msg.body)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        log.warning(
            "ignored a malformed %s on %s: %s", model.__name__, msg.raw_message.subject, reasons
        )
        return None


def create_broker(
    monitor: Monitor, settings: Settings, connection_log: ConnectionLog | None = None
) -> NatsBroker:
    connection_log = connection_log or ConnectionLog()
    broker = NatsBroker(
        settings.nats_servers,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        error_cb=connection_log.error,
        disconnected_cb=connection_log.disconnected,
        reconnected_cb=connection_log.reconnected,
        logger=logging.getLogger("faststream.wasched.health"),
        log_level=logging.DEBUG,
        **broker_options(settings, "health"),
    )
    stream = JStream(topology.STREAM, declare=False)
    pull = PullSub(batch_size=20, timeout=5.0)
    refused = Refusals()
    consumer = ConsumerConfig(ack_wait=ACK_WAIT_SECONDS)

    @broker.subscriber(
        topology.OUTCOME,
        stream=stream,
        durable=topology.HEALTH_OUTCOME,
        pull_sub=pull,
        inbox_prefix=pull_inbox("health"),
        config=consumer,
        ack_policy=AckPolicy.MANUAL,
        title="health-outcome",
        description="Counts final outcomes for /metrics and lists the latest on the page.",
    )
    async def outcomes(msg: NatsMessage) -> None:
        outcome = parse(Outcome, msg)
        if outcome is not None:
            monitor.on_outcome(outcome)
        await msg.ack()

    @broker.subscriber(
        topology.RECEIPT,
        stream=stream,
        durable=topology.HEALTH_RECEIPT,
        pull_sub=pull,
        inbox_prefix=pull_inbox("health"),
        config=consumer,
        ack_policy=AckPolicy.MANUAL,
        title="health-receipt",
        description="Counts delivery and read receipts for /metrics.",
    )
    async def receipts(msg: NatsMessage) -> None:
        receipt = parse(Receipt, msg)
        if receipt is not None:
            monitor.on_receipt(receipt)
        await msg.ack()

    @broker.subscriber(f"{topology.HEARTBEAT_PREFIX}*", title="health-heartbeat")
    async def heartbeats(msg: NatsMessage) -> None:
        heartbeat = parse(Heartbeat, msg)
        if heartbeat is None:
            return
        raw = msg.raw_message
        why = sources.heartbeat_refusal(raw.subject, heartbeat.service, raw.headers, raw.reply)
        if why is None:
            monitor.on_heartbeat(heartbeat)
        else:
            refused.note(raw.subject, why)

    @broker.subscriber(topology.SENDER_STATUS, title="health-sender-status")
    async def statuses(msg: NatsMessage) -> None:
        status = parse(SenderStatus, msg)
        if status is None:
            return
        why = sources.status_refusal(msg.raw_message.headers, msg.raw_message.reply)
        if why is None:
            monitor.on_status(status)
        else:
            refused.note(topology.SENDER_STATUS, why)

    return broker


def create_service(settings: Settings) -> HealthService:
    """Build everything; nothing connects until the web app's lifespan starts."""
    monitor = Monitor(settings)
    connection_log = ConnectionLog()
    broker = create_broker(monitor, settings, connection_log)

    def nats_up() -> bool:
        try:
            return bool(broker.connection.is_connected)
        except IncorrectState:
            return False

    async def declare() -> None:
        connection = await broker.connect()
        await topology.declare(connection.jetstream(), settings.nats_replicas)

    monitor.nats_up = nats_up
    stream_app = FastStream(broker, on_startup=[declare], logger=log)
    service = HealthService(settings, monitor, broker, stream_app, connection_log)
    service.web = create_web(monitor, service.lifespan)
    return service


def uvicorn_config(service: HealthService) -> uvicorn.Config:
    settings = service.settings
    return uvicorn.Config(
        service.web,
        host=settings.health_host,
        port=settings.health_port,
        access_log=False,  # `?token=` must never reach a log
        log_config=None,
        lifespan="on",
        server_header=False,
    )


class Server(uvicorn.Server):
    """Leaves signals to its owner: uvicorn's own handling re-raises SIGTERM after a
    graceful stop (exit status 143), and must not touch a test runner's handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        """First signal: finish in-flight requests and stop; a second one: stop now."""
        self.force_exit = self.should_exit
        self.should_exit = True


async def serve_until_signalled(server: Server) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_exit)
    await server.serve()


@asynccontextmanager
async def running(settings: Settings, timeout: float = 30.0) -> AsyncIterator[HealthService]:
    """Run the whole service in the current event loop, listening on NATS, until the block exits."""
    service = create_service(settings)
    server = Server(uvicorn_config(service))
    service.on_fatal = server.request_exit
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(timeout):
            while not (server.started and service.listening.is_set()):
                if task.done() or service.fatal:
                    raise RuntimeError(service.fatal or "health service did not start")
                await asyncio.sleep(0.02)
        yield service
    finally:
        server.should_exit = True
        await task


def _safe_url(url: str) -> str:
    """NATS URLs may carry user:password; show only scheme://host:port."""
    parts = []
    for one in url.split(","):
        scheme, _, rest = one.strip().partition("://")
        parts.append(f"{scheme}://{rest.rpartition('@')[2]}")
    return ",".join(parts)
