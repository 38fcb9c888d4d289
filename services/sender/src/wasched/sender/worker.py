"""The send loop: durable pull consumers on `wasched.due` and `wasched.send`, one message at a time.

Why nats-py pull subscriptions instead of FastStream subscribers: the consumers
must fetch *nothing* while WhatsApp is not connected or the throttle says wait
(FastStream's pull loop always fetches), a shutdown must be able to finish or
abandon the one in-flight send within a bound, and both subjects share one
lock because the pace is global. The subscriptions use the broker's connection.

Per message: read the ledger → refuse what is final, interrupted, expired,
invalid or not on WhatsApp → claim (compare-and-set) → wait for the throttle →
send → settle the ledger → publish the outcome (await the PubAck) → reply →
ack. A crash anywhere before the ack redelivers the message, and the ledger
then makes sure nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from wasched.common import ledger
from wasched.common.clock import utcnow
from wasched.common.events import Outcome, Reply
from wasched.common.ledger import Claim, LedgerEntry, interrupted_outcome
from wasched.common.messages import ErrorKind, Status
from wasched.common.recipients import InvalidRecipient, Recipient, mask, parse_recipient
from wasched.common.requests import reply
from wasched.common.topology import (
    DUE,
    OUTCOME,
    SEND,
    SENDER_DUE,
    SENDER_SEND,
    msg_id_header,
    stream_of,
)
from wasched.sender.config import SenderSettings
from wasched.sender.errors import SendErrorKind, classify
from wasched.sender.inbound import Job, Rejected, read_job
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.policy import (
    Existing,
    existing_verdict,
    expiry_reason,
    failed,
    lateness_seconds,
    reply_for,
)
from wasched.sender.receipts import ReceiptIndex
from wasched.sender.status import Stats
from wasched.sender.throttle import Throttle
from wasched.sender.transport import Sent, Transport, TransportError

log = logging.getLogger("wasched.sender")

CONSUMERS = ((SENDER_DUE, DUE), (SENDER_SEND, SEND))
FETCH_SECONDS = 1.0
RETRY_SECONDS = 5.0
MAX_ACK_PENDING = 100
ON_WHATSAPP_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing was handed to WhatsApp; let JetStream redeliver later."""

    reason: str
    delay: float = RETRY_SECONDS


@dataclass(slots=True)
class Attempt:
    """How far one message got, for a shutdown that has to abandon it."""

    job: Job
    claim: Claim | None = None
    sending: bool = False
    outcome: Outcome | None = None
    settled: bool = False
    jid: str | None = None


class Sender:
    def __init__(
        self,
        *,
        nc: NATS,
        kv: KeyValue,
        index: ReceiptIndex,
        transport: Transport,
        lifecycle: Lifecycle,
        throttle: Throttle,
        settings: SenderSettings,
        stats: Stats,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._kv = kv
        self._index = index
        self._transport = transport
        self._lifecycle = lifecycle
        self._throttle = throttle
        self._settings = settings
        self._stats = stats
        self._clock = clock
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._subs: list[JetStreamContext.PullSubscription] = []
        self._inflight: asyncio.Task[None] | None = None
        self._on_whatsapp: dict[str, tuple[bool, datetime]] = {}

    # start / stop ------------------------------------------------------------

    async def start(self) -> None:
        for durable, subject in CONSUMERS:
            sub = await self._subscribe(durable, subject)
            self._subs.append(sub)
            self._loops.append(asyncio.create_task(self._consume(sub, subject)))

    async def stop(self, grace: float) -> None:
        """Stop fetching; give the in-flight message `grace` seconds, then abandon it."""
        self._stopping.set()
        if not self._loops:
            return
        _, pending = await asyncio.wait(self._loops, timeout=grace)
        if pending and self._inflight is not None:
            log.warning("shutdown: abandoning the in-flight send after %gs", grace)
            self._inflight.cancel()
            await asyncio.wait([self._inflight], timeout=10)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for sub in self._subs:
            await _quietly(sub.unsubscribe())

    async def _subscribe(self, durable: str, subject: str) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=durable,
            filter_subject=subject,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._settings.sender_ack_wait_seconds,
            max_deliver=-1,
            # not 1: a message held by a sender that died must not block the others until
            # its ack_wait runs out (it is redelivered then, and found claimed)
            max_ack_pending=MAX_ACK_PENDING,
        )
        stream = stream_of(subject)
        await self._js.add_consumer(stream, config)  # creates, or updates an older config
        return await self._js.pull_subscribe_bind(durable=durable, stream=stream)

    # the loop ----------------------------------------------------------------

    async def _consume(self, sub: JetStreamContext.PullSubscription, subject: str) -> None:
        while await self._wait_until_ready():
            try:
                msgs = await sub.fetch(1, timeout=FETCH_SECONDS)
            except TimeoutError:
                continue
            except Exception as exc:  # NATS restarting, no responders, ...
                log.warning("fetching from %s failed: %s", subject, exc)
                await self._pause(1.0)
                continue
            for msg in msgs:
                await self._run_one(msg, subject)

    async def _wait_until_ready(self) -> bool:
        """Wait while WhatsApp is not connected or the throttle says no; False when stopping."""
        while not self._stopping.is_set():
            if not self._lifecycle.ready.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lifecycle.ready.wait(), 0.5)
                continue
            delay = self._throttle.delay(self._clock())
            if delay <= 0:
                return True
            await self._pause(min(delay, 1.0))
        return False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run_one(self, msg: Msg, subject: str) -> None:
        async with self._lock:
            self._stats.in_flight = 1
            task = asyncio.create_task(self._handle(msg, subject))
            self._inflight = task
            keep = asyncio.create_task(self._keep_in_progress(msg))
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    raise
            except Exception:
                log.exception("unexpected error handling a message on %s; retrying later", subject)
                await _quietly(msg.nak(delay=RETRY_SECONDS))
            finally:
                keep.cancel()
                self._inflight = None
                self._stats.in_flight = 0

    async def _keep_in_progress(self, msg: Msg) -> None:
        """Tell JetStream we are still at it, so a slow send is not redelivered meanwhile."""
        every = max(0.5, self._settings.sender_ack_wait_seconds / 3)
        while True:
            await asyncio.sleep(every)
            await _quietly(msg.in_progress())

    # one message -------------------------------------------------------------

    async def _handle(self, msg: Msg, subject: str) -> None:
        meta = msg.metadata
        job = read_job(
            subject,
            msg.data,
            msg.headers,
            stream_seq=meta.sequence.stream,
            stored_at=meta.timestamp,
        )
        if isinstance(job, Rejected):
            await self._reject(msg, subject, job)
            return
        attempt = Attempt(job)
        try:
            result = await self._decide(attempt)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(msg, attempt))
            raise
        if isinstance(result, Retry):
            log.info("%s: not sent yet (%s); retrying in %gs", job.id, result.reason, result.delay)
            await msg.nak(delay=result.delay)
            return
        await self._finish(msg, job, result)

    async def _decide(self, attempt: Attempt) -> Outcome | Retry:
        job = attempt.job
        existing = await ledger.read(self._kv, job.id)
        if existing is not None:
            return await self._from_existing(job, *existing)
        now = self._clock()
        reason = expiry_reason(
            job.scheduled, job.expires_at, now, self._settings.max_lateness_seconds
        )
        if reason:
            return await self._final_unsent(job, failed(job.id, ErrorKind.EXPIRED, reason, now))
        try:
            recipient = parse_recipient(job.to)
        except InvalidRecipient as exc:
            outcome = failed(job.id, ErrorKind.INVALID_RECIPIENT, str(exc), now)
            return await self._final_unsent(job, outcome)
        if not self._lifecycle.conn.can_send:
            return Retry(f"WhatsApp is {self._lifecycle.conn.state}")
        try:
            on_whatsapp = await self._is_on_whatsapp(recipient)
        except TransportError as exc:
            return Retry(f"could not check the recipient: {exc}")
        if not on_whatsapp:
            error = f"{mask(recipient.user)} is not on WhatsApp"
            outcome = failed(job.id, ErrorKind.NOT_ON_WHATSAPP, error, self._clock())
            return await self._final_unsent(job, outcome, recipient.jid)
        claim = await ledger.claim(self._kv, job.id, recipient.jid)
        if not claim.won:
            return await self._from_existing(job, claim.entry, claim.revision)
        attempt.claim, attempt.jid = claim, recipient.jid
        return await self._send(attempt, recipient)

    async def _send(self, attempt: Attempt, recipient: Recipient) -> Outcome | Retry:
        job, claim = attempt.job, attempt.claim
        assert claim is not None
        await asyncio.sleep(self._throttle.delay(self._clock()))
        if self._settings.send_typing_seconds > 0:
            await self._transport.typing(recipient, self._settings.send_typing_seconds)
        attempt.sending = True
        try:
            sent = await self._hand_over(job, recipient)
        except TimeoutError:
            outcome = interrupted_outcome(job.id)
        except TransportError as exc:
            kind = classify(str(exc))
            if kind is SendErrorKind.NOT_SENT and await ledger.release(
                self._kv, job.id, claim.revision
            ):
                attempt.sending = False
                return Retry(f"WhatsApp client said: {exc}")
            outcome = _failure(job.id, kind, str(exc), self._clock())
        else:
            await self._index.remember(sent.wa_message_id, job.id)
            self._stats.sent_since_start += 1
            outcome = Outcome(
                id=job.id,
                status=Status.SENT,
                at=sent.at,
                sent_at=sent.at,
                wa_message_id=sent.wa_message_id,
                lateness_seconds=lateness_seconds(job.scheduled, sent.at),
            )
        attempt.outcome = outcome
        outcome = await self._settle(job, claim.revision, outcome, recipient.jid)
        attempt.settled = True
        return outcome

    async def _hand_over(self, job: Job, recipient: Recipient) -> Sent:
        """Send; the throttle counts it from when the send returned, whatever the result."""
        try:
            return await asyncio.wait_for(
                self._transport.send(job.id, recipient, job.text),
                self._settings.send_timeout_seconds,
            )
        finally:
            self._throttle.record(self._clock())

    # ledger helpers ------------------------------------------------------------

    async def _from_existing(self, job: Job, entry: LedgerEntry, revision: int) -> Outcome:
        if existing_verdict(entry) is Existing.INTERRUPTED:
            log.warning(
                "%s was claimed earlier but has no outcome (crash or timeout mid-send); "
                "not sending it again",
                job.id,
            )
            return await self._settle(job, revision, interrupted_outcome(job.id), entry.jid)
        log.info("%s is %s already; re-publishing its outcome", job.id, entry.state.value)
        return entry.outcome(job.id)

    async def _final_unsent(self, job: Job, outcome: Outcome, jid: str | None = None) -> Outcome:
        mine = LedgerEntry.from_outcome(outcome, jid)
        recorded = await ledger.record_final(self._kv, job.id, mine)
        if recorded is mine:
            return outcome
        current = await ledger.read(self._kv, job.id)
        if current is None:  # withdrawn meanwhile: let the redelivery decide afresh
            raise RuntimeError(f"{job.id}: ledger entry vanished")
        return await self._from_existing(job, *current)

    async def _settle(self, job: Job, revision: int, outcome: Outcome, jid: str | None) -> Outcome:
        """Replace the claim with the outcome, retrying while NATS is unreachable."""
        entry = LedgerEntry.from_outcome(outcome, jid)
        for attempt in range(30):
            try:
                await ledger.settle(self._kv, job.id, entry, revision)
                return outcome
            except KeyWrongLastSequenceError:
                current = await ledger.read(self._kv, job.id)
                if current is None or not current[0].is_final:
                    raise
                log.warning("%s: the ledger was settled by someone else; keeping theirs", job.id)
                return current[0].outcome(job.id)
            except Exception as exc:
                log.warning("recording %s in the ledger failed (%s); retrying", job.id, exc)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        raise RuntimeError(f"could not record the outcome of {job.id} in the ledger")

    async def _is_on_whatsapp(self, recipient: Recipient) -> bool:
        now = self._clock()
        cached = self._on_whatsapp.get(recipient.jid)
        if cached and now - cached[1] < ON_WHATSAPP_TTL:
            return cached[0]
        answer = await self._transport.is_on_whatsapp(recipient)
        self._on_whatsapp[recipient.jid] = (answer, now)
        return answer

    # endings -------------------------------------------------------------------

    async def _finish(self, msg: Msg, job: Job, outcome: Outcome) -> None:
        outcome = outcome.model_copy(update={"to": job.to})
        headers = msg_id_header("outcome", f"{job.id}:{outcome.status.value}")
        await self._js.publish(OUTCOME, outcome.to_json(), headers=headers)
        await _quietly(reply(self._nc, msg.headers, reply_for(outcome)))
        await msg.ack()
        _log_outcome(job, outcome)

    async def _reject(self, msg: Msg, subject: str, rejected: Rejected) -> None:
        log.warning("rejected a message on %s: %s", subject, rejected.reason)
        self._stats.reject(subject)
        if rejected.id is not None and subject == DUE:
            now = self._clock()
            outcome = failed(rejected.id, ErrorKind.VALIDATION, rejected.reason, now)
            job = Job(rejected.id, "", "", subject, now, reply_to=rejected.reply_to)
            outcome = await self._final_unsent(job, outcome)
            outcome = outcome.model_copy(update={"to": None})
            headers = msg_id_header("outcome", f"{job.id}:{outcome.status.value}")
            await self._js.publish(OUTCOME, outcome.to_json(), headers=headers)
        await _quietly(reply(self._nc, msg.headers, _rejection_reply(rejected)))
        await msg.term()

    async def _abandon(self, msg: Msg, attempt: Attempt) -> None:
        """Shutdown ran out of time: record what is known, never leave a claim unexplained."""
        job, claim = attempt.job, attempt.claim
        try:
            if attempt.sending and attempt.outcome is None:
                attempt.outcome = interrupted_outcome(job.id)
            if attempt.outcome is not None and claim is not None:
                outcome = attempt.outcome
                if not attempt.settled:
                    outcome = await self._settle(job, claim.revision, outcome, attempt.jid)
                await self._finish(msg, job, outcome)
                return
            if claim is not None:
                await ledger.release(self._kv, job.id, claim.revision)
            await msg.nak()
        except Exception as exc:
            log.error("shutdown: could not record %s (%s); it is redelivered", job.id, exc)


def _failure(message_id: str, kind: SendErrorKind, error: str, now: datetime) -> Outcome:
    if kind is SendErrorKind.REFUSED:
        return failed(message_id, ErrorKind.WHATSAPP_ERROR, f"WhatsApp refused it: {error}", now)
    outcome = interrupted_outcome(message_id)
    return outcome.model_copy(update={"error": f"{outcome.error} (client said: {error})"})


def _rejection_reply(rejected: Rejected) -> Reply:
    return Reply(ok=False, id=rejected.id, error=f"rejected: {rejected.reason}")


def _log_outcome(job: Job, outcome: Outcome) -> None:
    if outcome.status is Status.SENT:
        late = f", {outcome.lateness_seconds:g}s late" if outcome.lateness_seconds else ""
        log.info("sent %s to %s (%s%s)", job.id, mask(job.to), outcome.wa_message_id, late)
    else:
        log.info("%s %s: %s", outcome.status.value, job.id, outcome.error or "")


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except Exception as exc:
        log.debug("ignored: %s", exc)
