"""The poller's FastStream app: one NatsBroker, its consumers, and the start-up order.

FastStream runs `on_startup` before it starts any subscriber, so a standby
poller waits for the lease there and consumes nothing until it is active.
Nothing connects here: `PollerApp(settings)` only wires; `run()` connects.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream import AckPolicy, FastStream
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub

from wasched.common import topology
from wasched.common.connect import broker_options, pull_inbox
from wasched.common.settings import Settings, load_settings
from wasched.poller.connection import ConnectionLog
from wasched.poller.consumers import Consumers
from wasched.poller.outputs import declare_outputs
from wasched.poller.service import Poller

GRACEFUL_SECONDS = 30.0
FETCH_WAIT_SECONDS = 3.0
"""A pull lost in a NATS restart is renewed after at most this long."""


class PollerApp:
    def __init__(self, settings: Settings) -> None:
        self.exit_code = 0
        broker_log = logging.getLogger("wasched.poller.nats")
        broker_log.setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
        broker_log.addFilter(quiet_broker_noise)
        link = ConnectionLog(settings.nats_url)
        self.broker = NatsBroker(
            settings.nats_servers,
            name="wasched-poller",
            error_cb=link.on_error,
            disconnected_cb=link.on_disconnected,
            reconnected_cb=link.on_reconnected,
            connect_timeout=3,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            graceful_timeout=GRACEFUL_SECONDS,
            logger=broker_log,
            log_level=logging.DEBUG,
            **broker_options(settings, "poller"),
        )
        stream = JStream(topology.STREAM, declare=False)  # declared by topology.declare
        lane = topology.lane(settings.rehearsal)
        outputs = declare_outputs(self.broker, stream, lane)
        self.poller = Poller(settings, self.broker, outputs, exit=self._exit)
        register(self.broker, stream, Consumers(self.poller), lane)
        self.app = FastStream(
            self.broker,
            lifespan=self.poller.lifespan,
            on_startup=[self.poller.startup],
            after_startup=[self.poller.after_startup],
            on_shutdown=[self.poller.shutdown, link.closing],
            logger=None,
        )

    def _exit(self, code: int) -> None:
        self.exit_code = self.exit_code or code
        self.app.exit()

    async def run(self) -> int:
        await self.app.run()
        return self.exit_code


def quiet_broker_noise(record: logging.LogRecord) -> bool:
    """Drop FastStream's false alarm and its duplicate connection tracebacks.

    FastStream 0.7.8 suppresses nats-py's `nats.errors.TimeoutError` around a
    pull, but nats-py 2.16 raises the builtin `TimeoutError` when a long pull
    expires empty; FastStream's supervisor then restarts the fetch loop (the
    right outcome) and logs an ERROR traceback that means nothing. Its
    "Connection broken" tracebacks repeat what `ConnectionLog` says in a line.
    """
    error = record.exc_info[1] if record.exc_info else None
    if type(error) is TimeoutError and "retrying" in record.getMessage():
        return False
    return not record.getMessage().startswith("Connection broken")  # ConnectionLog says it


def register(
    broker: NatsBroker, stream: JStream, consumers: Consumers, lane: topology.Lane = topology.REAL
) -> None:
    """Durable pull consumers with explicit (manual) acks and unlimited redelivery; a
    rehearsal's on its own subjects, and none for requests or receipts (the real run's)."""
    requests = JStream(topology.IN_STREAM, declare=False)  # requests from other systems

    def consumer(
        subject: str, durable: str, batch: int, ack_wait: float, handler: Any, about: str
    ) -> None:
        broker.subscriber(
            subject,
            stream=requests if topology.stream_of(subject) == requests.name else stream,
            durable=durable,
            pull_sub=PullSub(batch_size=batch, timeout=FETCH_WAIT_SECONDS),
            inbox_prefix=pull_inbox("poller"),
            config=ConsumerConfig(ack_wait=ack_wait, max_deliver=-1),
            ack_policy=AckPolicy.MANUAL,
            description=about,
        )(handler)

    consumer(
        lane.fire,
        lane.poller_fire,
        32,
        30,
        consumers.on_fire,
        "A schedule fired (DueMessage): re-checked against the document, then forwarded.",
    )
    consumer(
        lane.outcome,
        lane.poller_outcome,
        64,
        60,
        consumers.on_outcome,
        "Outcome: written into the document, acked once S3 has it.",
    )
    if lane.rehearsal:
        return
    consumer(
        topology.RECEIPT,
        topology.POLLER_RECEIPT,
        64,
        60,
        consumers.on_receipt,
        "Receipt: deliveredAt/readAt written into the document.",
    )
    consumer(
        topology.SCHEDULE,
        topology.POLLER_SCHEDULE,
        1,
        60,
        consumers.on_schedule,
        "ScheduleRequest: adds a message (id required); answers Reply at Wasched-Reply-To.",
    )
    consumer(
        topology.CANCEL,
        topology.POLLER_CANCEL,
        1,
        60,
        consumers.on_cancel,
        "CancelRequest: cancels a pending message; answers Reply at Wasched-Reply-To.",
    )


def asyncapi() -> FastStream:
    """For `faststream docs gen --factory wasched.poller.app:asyncapi` (reads the environment)."""
    return PollerApp(load_settings()).app
