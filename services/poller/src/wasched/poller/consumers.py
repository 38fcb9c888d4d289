"""FastStream handlers: parse each message, hand it to the poller, then ack, nak or reject it.

The ack policy is MANUAL on purpose: FastStream's default terminates a message
whose handler raises, but an outcome must come back until S3 has it. Bodies
are parsed here rather than by FastStream so that a malformed message is
rejected once with a logged reason, instead of failing the handler forever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faststream.nats import NatsMessage
from pydantic import BaseModel

from wasched.common import topology
from wasched.common.events import DueMessage, Outcome, Receipt, Reply
from wasched.common.requests import reply
from wasched.poller import intake
from wasched.poller.service import Poller, RetryLater

log = logging.getLogger("wasched.poller")

MIN_RETRY_SECONDS = 0.5
SCHEDULER_HEADER = "Nats-Scheduler"
"""Set by NATS on a message a schedule produced; anything else on wasched.fire is a stray."""

M = TypeVar("M", bound=BaseModel)


def retry_delay(deliveries: int, poll_interval: float) -> float:
    """Back off per redelivery: 0.5 s, 1 s, 2 s, ... never longer than a poll interval."""
    return min(
        max(poll_interval, MIN_RETRY_SECONDS), MIN_RETRY_SECONDS * 2 ** max(deliveries - 1, 0)
    )


class Consumers:
    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    async def on_fire(self, msg: NatsMessage) -> None:
        if SCHEDULER_HEADER not in (msg.headers or {}):
            await self._reject(msg, topology.FIRE, "not from a schedule (no Nats-Scheduler)")
            return
        fired = await self._parse(msg, DueMessage, topology.FIRE)
        if fired is None:
            return
        try:
            await self.poller.fire(fired)
        except RetryLater:
            await self._retry(msg)
            return
        except Exception:
            log.exception("could not check the fired message %s; will retry", fired.id)
            await self._retry(msg)
            return
        await msg.ack()

    async def on_outcome(self, msg: NatsMessage) -> None:
        event = await self._parse(msg, Outcome, topology.OUTCOME)
        if event is not None:
            await self._save(msg, event)

    async def on_receipt(self, msg: NatsMessage) -> None:
        event = await self._parse(msg, Receipt, topology.RECEIPT)
        if event is not None:
            await self._save(msg, event)

    async def on_schedule(self, msg: NatsMessage) -> None:
        await self._request(
            msg, topology.SCHEDULE, lambda: self.poller.add_message(intake.parse_schedule(msg.body))
        )

    async def on_cancel(self, msg: NatsMessage) -> None:
        await self._request(
            msg, topology.CANCEL, lambda: self.poller.cancel_message(intake.parse_cancel(msg.body))
        )

    async def _request(
        self, msg: NatsMessage, subject: str, carry_out: Callable[[], Awaitable[Reply]]
    ) -> None:
        """Parse and carry out a request; answer the caller; refuse or retry as due."""
        try:
            answer = await carry_out()
        except intake.Rejected as exc:
            await self._refuse(msg, subject, str(exc))
            return
        except RetryLater:
            await self._retry(msg)
            return
        await reply(self.poller.broker.connection, msg.headers, answer)
        await msg.ack()

    async def _save(self, msg: NatsMessage, event: Outcome | Receipt) -> None:
        try:
            await self.poller.save(event)
        except RetryLater:
            await self._retry(msg)
            return
        except Exception:
            log.exception(
                "could not save the %s for %s; will retry", type(event).__name__, event.id
            )
            await self._retry(msg)
            return
        await msg.ack()

    async def _parse(self, msg: NatsMessage, model: type[M], subject: str) -> M | None:
        try:
            return intake.parse_event(model, msg.body)
        except intake.Rejected as exc:
            await self._reject(msg, subject, str(exc))
            return None

    async def _reject(self, msg: NatsMessage, subject: str, reason: str) -> None:
        """Malformed: logged, counted, never redelivered."""
        self.poller.count_rejected(subject)
        log.warning("rejected a message on %s: %s", subject, reason)
        await msg.reject()

    async def _refuse(self, msg: NatsMessage, subject: str, reason: str) -> None:
        """A request we will not carry out: answer the caller, count it, never redeliver."""
        self.poller.count_rejected(subject)
        log.warning("refused a request on %s: %s", subject, reason)
        await reply(self.poller.broker.connection, msg.headers, Reply(ok=False, error=reason))
        await msg.reject()

    async def _retry(self, msg: NatsMessage) -> None:
        deliveries = msg.raw_message.metadata.num_delivered or 1
        await msg.nack(delay=retry_delay(deliveries, self.poller.interval))
