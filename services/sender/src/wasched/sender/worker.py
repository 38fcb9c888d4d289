"""The send loop: durable pull consumers on `wasched.due` and `wasched.send`, one message at a time.

Why nats-py pull subscriptions instead of FastStream subscribers: the consumers
must fetch *nothing* while WhatsApp is not connected or the pace says wait
(FastStream's pull loop always fetches), a shutdown must be able to finish or
abandon the one in-flight send within a bound, and both subjects share one
lock because the pace is global. The subscriptions use the broker's connection.

Per message: `flow.Flow.decide` (see there) gives an outcome, a retry or a skip; an
outcome is published (PubAck awaited), the caller answered, the journal entry closed and
the message acked. A crash anywhere before the ack redelivers the message, and the ledger
(with the liveness of a claim's holder) then makes sure nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from wasched.common import ledger, topology
from wasched.common.clock import utcnow
from wasched.common.events import Outcome, Reply
from wasched.common.ledger import LedgerEntry
from wasched.common.messages import ErrorKind, Status
from wasched.common.recipients import mask
from wasched.common.requests import reply
from wasched.common.topology import DUE, SEND, SENDER_DUE, SENDER_SEND, stream_of
from wasched.common.waits import wait_event
from wasched.sender import pace
from wasched.sender.attempt import Attempt, Retry, Skip, interrupted
from wasched.sender.config import SenderSettings
from wasched.sender.flow import Flow
from wasched.sender.inbound import Job, Rejected, read_job
from wasched.sender.journal import Kept
from wasched.sender.policy import failed, reply_for
from wasched.sender.records import SettleLater

log = logging.getLogger("wasched.sender")

CONSUMERS = ((SENDER_DUE, DUE), (SENDER_SEND, SEND))
FETCH_SECONDS = 1.0
SETTLER_SECONDS = 5.0
MAX_ACK_PENDING = 100


class Sender:
    def __init__(
        self,
        *,
        nc: NATS,
        flow: Flow,
        settings: SenderSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._flow = flow
        self._parts = flow.parts
        self._settings = settings
        self._stats = flow.stats
        self._clock = clock
        self._lock = asyncio.Lock()
        self._stopping = flow.stopping
        self._loops: list[asyncio.Task[None]] = []
        self._subs: list[JetStreamContext.PullSubscription] = []
        self._inflight: asyncio.Task[None] | None = None
        self._lane = topology.lane(settings.rehearsal)

    @property
    def stopping(self) -> asyncio.Event:
        return self._stopping

    # start / stop ------------------------------------------------------------

    async def start(self) -> None:
        await self._settle_journal()  # a restart settles what it knew before taking new work
        for durable, subject in consumers(self._lane):
            sub = await self._subscribe(durable, subject)
            self._subs.append(sub)
            self._loops.append(asyncio.create_task(self._consume(sub, subject)))
        self._loops.append(asyncio.create_task(self._settle_loop()))

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
        stream = stream_of(subject)
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
                if not self._stopping.is_set():
                    log.warning("fetching from %s failed: %s", subject, exc)
                await self._pause(1.0)
                continue
            for msg in msgs:
                await self._run_one(msg, subject)

    async def _wait_until_ready(self) -> bool:
        """Wait while WhatsApp is not connected or the pace says no; False when stopping."""
        lifecycle = self._parts.lifecycle
        while not self._stopping.is_set():
            if not lifecycle.ready.is_set():
                await wait_event(lifecycle.ready, 0.5)
                continue
            state = await self._parts.account.peek()
            wait = pace.next_send(state, self._clock(), self._flow.limits)
            self._stats.next_send_at = wait.until if wait else None
            self._stats.waiting_for = wait.why if wait else None
            if wait is None:
                return True
            await self._pause(min((wait.until - self._clock()).total_seconds(), 1.0))
        return False

    async def _pause(self, seconds: float) -> None:
        await wait_event(self._stopping, seconds)

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
            except (NatsError, TimeoutError) as exc:  # NATS away: expected, no traceback
                log.warning(
                    "NATS did not answer while handling a message on %s (%r); "
                    "it is delivered again",
                    subject,
                    exc,
                )
                await _quietly(msg.nak(delay=5.0))
            except Exception:
                log.exception("unexpected error handling a message on %s; retrying later", subject)
                await _quietly(msg.nak(delay=5.0))
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
        subject = DUE if subject == self._lane.due else subject  # a rehearsal's hand-overs
        job = read_job(
            subject,
            msg.data,
            msg.headers,
            stream_seq=meta.sequence.stream,
            stored_at=meta.timestamp,
            media_key_prefix=self._settings.media_prefix,
        )
        if isinstance(job, Rejected):
            await self._reject(msg, subject, job)
            return
        attempt = Attempt(job)
        try:
            verdict = await self._flow.decide(attempt)
        except asyncio.CancelledError:
            await asyncio.shield(self._abandon(msg, attempt))
            raise
        except SettleLater as exc:
            log.warning("%s; the result is kept in the journal until NATS is back", exc)
            await _quietly(msg.nak(delay=SETTLER_SECONDS))
            return
        except Exception:
            await self._release_unsent(attempt)
            raise
        match verdict:
            case Retry(reason, delay):
                log.info("%s: not sent yet (%s); retrying in %gs", job.id, reason, delay)
                await msg.nak(delay=delay)
            case Skip(reason):
                await _quietly(
                    reply(self._nc, msg.headers, Reply(ok=False, id=job.id, error=reason))
                )
                await msg.ack()
            case Outcome():
                await self._finish(msg, job, verdict)

    async def _finish(self, msg: Msg, job: Job, outcome: Outcome) -> None:
        outcome = outcome.model_copy(update={"to": job.to})
        await self._publish(outcome)
        await self._parts.records.journal.done(job.id)
        await _quietly(reply(self._nc, msg.headers, reply_for(outcome)))
        await msg.ack()
        _log_outcome(job, outcome)

    async def _publish(self, outcome: Outcome) -> None:
        key = f"{outcome.id}:{outcome.status.value}"
        if outcome.version:
            key += f":{outcome.version}"
        headers = self._lane.msg_id_header("outcome", key)
        await self._js.publish(self._lane.outcome, outcome.to_json(), headers=headers)

    async def _reject(self, msg: Msg, subject: str, rejected: Rejected) -> None:
        log.warning("rejected a message on %s: %s", subject, rejected.reason)
        self._stats.reject(subject)
        if rejected.id is not None and subject == DUE:
            outcome = failed(rejected.id, ErrorKind.VALIDATION, rejected.reason, self._clock())
            recorded = await ledger.record_final(
                self._parts.kv, rejected.id, LedgerEntry.from_outcome(outcome)
            )
            if recorded.is_final:
                await self._publish(recorded.outcome(rejected.id).model_copy(update={"to": None}))
        await _quietly(reply(self._nc, msg.headers, _rejection_reply(rejected)))
        await msg.term()

    async def _release_unsent(self, attempt: Attempt) -> None:
        """An error between the claim and the hand-over: the claim is withdrawn, never stranded."""
        claim = attempt.claim
        if claim is not None and not attempt.sending:
            job_id = attempt.job.id
            try:
                released = await ledger.release(self._parts.kv, job_id, claim.revision)
            except Exception as exc:
                log.warning("%s: could not withdraw the claim (%s)", job_id, exc)
            else:
                log.info(
                    "%s: claim withdrawn after an error before the hand-over (%s)", job_id, released
                )

    async def _abandon(self, msg: Msg, attempt: Attempt) -> None:
        """Shutdown ran out of time: record what is known, never leave a claim unexplained."""
        job, claim = attempt.job, attempt.claim
        try:
            if attempt.sending and attempt.outcome is None:
                attempt.outcome = interrupted(job, said="the sender stopped before the answer")
            if attempt.outcome is not None and claim is not None:
                outcome = attempt.outcome
                if not attempt.settled:
                    kept = Kept(outcome, claim.revision, attempt.jid)
                    outcome = await self._parts.records.settle(kept)
                await self._finish(msg, job, outcome)
                return
            await self._release_unsent(attempt)
            await msg.nak()
        except Exception as exc:
            log.warning("shutdown: could not record %s (%s); it is redelivered", job.id, exc)

    # results kept while NATS was away ----------------------------------------------

    async def _settle_journal(self) -> None:
        for kept in list(self._parts.records.journal.pending.values()):
            try:
                await self._settle_one(kept)
            except Exception as exc:
                log.warning("%s: still not in NATS (%s); trying again shortly", kept.id, exc)
                return

    async def _settle_loop(self) -> None:
        while not self._stopping.is_set():
            await self._pause(SETTLER_SECONDS)
            if self._parts.records.journal.pending and not self._stopping.is_set():
                async with self._lock:
                    await self._settle_journal()

    async def _settle_one(self, kept: Kept) -> None:
        outcome = await self._parts.records.settle_kept(kept)
        await self._publish(outcome.model_copy(update={"to": kept.outcome.to}))
        await self._parts.records.journal.done(kept.id)
        log.info(
            "%s: the result kept while NATS was away is recorded (%s)",
            kept.id,
            outcome.status.value,
        )


def consumers(lane: topology.Lane) -> tuple[tuple[str, str], ...]:
    """(durable, subject) to consume: a rehearsal's own hand-overs, and no requests from other
    systems (they wait in NATS for the real run)."""
    if lane.rehearsal:
        return ((lane.sender_due, lane.due),)
    return CONSUMERS


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
