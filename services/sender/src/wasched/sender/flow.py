"""One message, from its ledger entry to WhatsApp; the claim is taken at the last moment.

Order: a result kept from before (journal) → what the ledger says → expiry → recipient →
lookup (cached, paced) → the pace and the same-text guard (a short wait happens here, a long
one goes back to JetStream) → the typing indicator → the ledger, expiry, connection and
lookup once more → claim → send → record. Nothing before the claim can strand it, so a
cancel or an edit made during the wait is honoured and a crash there costs nothing; what
fails between the claim and the hand-over releases it (worker.py); after the hand-over only
the error's class decides (errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.js.kv import KeyValue

from wasched.common import ledger
from wasched.common.clock import utcnow
from wasched.common.events import Outcome
from wasched.common.ledger import Claim, LedgerEntry, LedgerState, interrupted_outcome
from wasched.common.messages import ErrorKind, Status
from wasched.common.recipients import InvalidRecipient, Recipient, mask, parse_recipient
from wasched.sender import pace
from wasched.sender.account import Account
from wasched.sender.config import SenderSettings
from wasched.sender.errors import SendErrorKind, classify, explain
from wasched.sender.inbound import Job
from wasched.sender.journal import Kept
from wasched.sender.lifecycle import Lifecycle
from wasched.sender.liveness import Liveness
from wasched.sender.lookups import LookupFailed, Lookups
from wasched.sender.pace import Limits, Wait
from wasched.sender.policy import (
    Holder,
    Standing,
    expiry_reason,
    failed,
    lateness_seconds,
    standing,
)
from wasched.sender.receipts import ReceiptIndex
from wasched.sender.records import Records
from wasched.sender.status import Stats
from wasched.sender.transport import Transport, TransportError

log = logging.getLogger("wasched.sender")
RETRY_SECONDS = 5.0
HOLD_SECONDS = 60.0
"""A pace wait up to this long happens with the message in hand; a longer one goes back."""
MAX_RETRY_SECONDS = 300.0
ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing was handed to WhatsApp; let JetStream deliver it again later."""

    reason: str
    delay: float = RETRY_SECONDS


@dataclass(frozen=True, slots=True)
class Skip:
    """An out-of-date hand-over: ack it, send nothing, publish no outcome."""

    reason: str


Verdict = Outcome | Retry | Skip


@dataclass(frozen=True, slots=True)
class Ready:
    target: Recipient


@dataclass(slots=True)
class Attempt:
    """How far one message got, for a shutdown or an error that has to end it."""

    job: Job
    claim: Claim | None = None
    sending: bool = False
    outcome: Outcome | None = None
    settled: bool = False
    jid: str | None = None


@dataclass
class Parts:
    kv: KeyValue
    records: Records
    liveness: Liveness
    lookups: Lookups
    account: Account
    index: ReceiptIndex
    transport: Transport
    lifecycle: Lifecycle


class Flow:
    def __init__(
        self,
        parts: Parts,
        settings: SenderSettings,
        limits: Limits,
        stats: Stats,
        stopping: asyncio.Event,
        clock: Callable[[], datetime] = utcnow,
        draw: Callable[[], float] | None = None,
    ) -> None:
        self.parts, self.settings, self.limits, self.stats = parts, settings, limits, stats
        self.stopping = stopping
        self._clock = clock
        self._draw = draw or _jitter(settings.send_jitter_seconds)

    async def decide(self, attempt: Attempt) -> Verdict:
        job = attempt.job
        kept = self.parts.records.journal.get(job.id)
        if kept is not None:
            log.info("%s: settling the result kept in the journal", job.id)
            return await self.parts.records.settle(kept)
        for _ in range(ROUNDS):
            checked = await self._check(job)
            if not isinstance(checked, Ready):
                return checked
            wait, same_text = await self._pace_wait(job, checked.target)
            if wait is None:
                break
            delay = (wait.until - self._clock()).total_seconds()
            if same_text or delay > HOLD_SECONDS:
                return Retry(wait.why, min(MAX_RETRY_SECONDS, max(1.0, delay)))
            log.debug("%s: waiting %.1fs (%s)", job.id, delay, wait.why)
            if await self._pause(delay):
                return Retry("shutting down", 0)
        else:
            return Retry("the pace kept changing", RETRY_SECONDS)
        await self._typing(checked.target)
        checked = await self._check(job)  # the last look before the claim
        if not isinstance(checked, Ready):
            return checked
        return await self._claim_and_send(attempt, checked.target)

    # checks ------------------------------------------------------------------

    async def _check(self, job: Job) -> Ready | Verdict:
        for _ in range(ROUNDS):
            current = await ledger.read(self.parts.kv, job.id)
            verdict = await self._existing(job, *current) if current else None
            if verdict is None:
                break
            if verdict != "again":
                return verdict  # type: ignore[return-value]
        now = self._clock()
        reason = expiry_reason(
            job.scheduled, job.expires_at, now, self.settings.max_lateness_seconds
        )
        if reason:
            return await self._final_unsent(
                job, failed(job.id, ErrorKind.EXPIRED, reason, now, job.version)
            )
        try:
            recipient = parse_recipient(job.to)
        except InvalidRecipient as exc:
            outcome = failed(job.id, ErrorKind.INVALID_RECIPIENT, str(exc), now, job.version)
            return await self._final_unsent(job, outcome)
        if not self.parts.lifecycle.conn.can_send:
            return Retry(f"WhatsApp is {self.parts.lifecycle.conn.state}")
        found = await self.parts.lookups.resolve(recipient)
        if isinstance(found, Wait):
            self.stats.next_lookup_at = found.until
            return Retry(found.why, self._until(found.until))
        if isinstance(found, LookupFailed):
            self.stats.next_lookup_at = found.retry_at
            return Retry(
                f"could not check the recipient: {found.error}", self._until(found.retry_at)
            )
        if found.recipient is None:
            error = f"{mask(recipient.user)} is not on WhatsApp"
            outcome = failed(job.id, ErrorKind.NOT_ON_WHATSAPP, error, self._clock(), job.version)
            return await self._final_unsent(job, outcome, recipient.jid)
        return Ready(found.recipient)

    async def _existing(self, job: Job, entry: LedgerEntry, revision: int) -> Verdict | str | None:
        """None: free to claim; "again": the entry moved, read it again; else the verdict."""
        holder = None
        if entry.state is LedgerState.CLAIMED:
            holder = await self.parts.liveness.state_of(entry.holder)
        match standing(entry, job.version, holder):
            case Standing.FREE:
                return None
            case Standing.OUT_OF_DATE:
                self.stats.out_of_date += 1
                log.info(
                    "%s: version %s is out of date (%s); not sent",
                    job.id,
                    job.version,
                    _gate(entry),
                )
                return Skip(
                    "out of date: the message changed or was withdrawn since this hand-over"
                )
            case Standing.FINAL:
                log.info("%s is %s already; re-publishing its outcome", job.id, entry.state.value)
                return entry.outcome(job.id)
            case Standing.HELD:
                delay = (
                    RETRY_SECONDS
                    if holder is Holder.ALIVE
                    else max(1.0, self.settings.sender_liveness_seconds / 2)
                )
                log.info(
                    "%s is being sent by %s (%s); looking again in %gs",
                    job.id,
                    entry.holder,
                    holder,
                    delay,
                )
                return Retry(f"held by {entry.holder}", delay)
        outcome = _interrupted(job, entry.version)
        if not await self.parts.records.orphaned(job.id, entry, revision, outcome):
            return "again"
        log.warning(
            "%s was claimed by %s, which is gone, without an outcome (crash or timeout "
            "mid-send); not sending it again",
            job.id,
            entry.holder or "an older sender",
        )
        return outcome

    async def _final_unsent(self, job: Job, outcome: Outcome, jid: str | None = None) -> Verdict:
        mine = LedgerEntry.from_outcome(outcome, jid)
        recorded = await ledger.record_final(self.parts.kv, job.id, mine)
        if recorded is mine:
            return outcome
        current = await ledger.read(self.parts.kv, job.id)
        if current is None:  # withdrawn meanwhile: let the redelivery decide afresh
            return Retry("the ledger entry changed meanwhile", 1.0)
        verdict = await self._existing(job, *current)
        return (
            verdict
            if isinstance(verdict, Outcome | Retry | Skip)
            else Retry("the ledger entry changed", 1.0)
        )

    async def _pace_wait(self, job: Job, target: Recipient) -> tuple[Wait | None, bool]:
        state = await self.parts.account.pace()
        now = self._clock()
        wait = pace.next_send(state, now, self.limits)
        self.stats.next_send_at = wait.until if wait else None
        self.stats.waiting_for = wait.why if wait else None
        text_wait = pace.same_text_wait(state, job.text, target.jid, now, self.limits)
        if text_wait is not None and (wait is None or text_wait.until > wait.until):
            self.stats.held_same_text += 1
            log.info("%s: held back: %s", job.id, text_wait.why)
            return text_wait, True
        return wait, False

    # the send ----------------------------------------------------------------

    async def _claim_and_send(self, attempt: Attempt, target: Recipient) -> Verdict:
        job = attempt.job
        claim = await ledger.claim(
            self.parts.kv,
            job.id,
            target.jid,
            version=job.version,
            holder=self.parts.liveness.holder,
        )
        if not claim.won:
            verdict = await self._existing(job, claim.entry, claim.revision)
            return (
                verdict
                if isinstance(verdict, Outcome | Retry | Skip)
                else Retry("lost the claim", 1.0)
            )
        attempt.claim, attempt.jid = claim, target.jid
        attempt.sending = True
        try:
            sent = await asyncio.wait_for(
                self.parts.transport.send(job.id, target, job.text),
                self.settings.send_timeout_seconds,
            )
        except TimeoutError:
            outcome = _interrupted(
                job, job.version, f"no answer within {self.settings.send_timeout_seconds:g}s"
            )
        except TransportError as exc:
            kind = classify(str(exc))
            if kind is SendErrorKind.NOT_SENT and await ledger.release(
                self.parts.kv, job.id, claim.revision
            ):
                attempt.sending, attempt.claim = False, None
                return Retry(f"nothing reached WhatsApp: {exc}")
            if kind is SendErrorKind.REFUSED:
                error = f"WhatsApp refused it: {explain(str(exc))}"
                outcome = failed(
                    job.id, ErrorKind.WHATSAPP_ERROR, error, self._clock(), job.version
                )
            else:
                outcome = _interrupted(job, job.version, f"client said: {exc}")
        except Exception as exc:  # the transport failed in a way it does not describe
            outcome = _interrupted(job, job.version, f"client raised {exc!r}")
        else:
            outcome = Outcome(
                id=job.id,
                status=Status.SENT,
                at=sent.at,
                sent_at=sent.at,
                wa_message_id=sent.wa_message_id,
                lateness_seconds=lateness_seconds(job.scheduled, sent.at),
                version=job.version,
            )
        # first to disk, before anything that needs NATS: WhatsApp's answer must not be lost
        attempt.outcome = outcome.model_copy(update={"to": job.to})
        kept = Kept(attempt.outcome, claim.revision, target.jid)
        await self.parts.records.journal.keep(kept)
        if outcome.status is Status.SENT and outcome.wa_message_id:
            self.stats.sent_since_start += 1
            await self.parts.index.remember(outcome.wa_message_id, job.id)
        await self._count_send(job, target)
        settled = await self.parts.records.settle(kept)
        attempt.settled = True
        return settled

    async def _count_send(self, job: Job, target: Recipient) -> None:
        """Every send that may have reached WhatsApp counts towards the pace."""
        at, jitter = self._clock(), self._draw()
        try:
            await self.parts.account.change(
                lambda s: pace.after_send(s, at, job.text, target.jid, jitter, self.limits)
            )
        except Exception as exc:
            log.warning("could not record the send in the pace history: %s", exc)

    async def _typing(self, target: Recipient) -> None:
        seconds = self.settings.send_typing_seconds
        if seconds <= 0:
            return
        try:
            await self.parts.transport.typing(target, seconds)
        except Exception as exc:  # cosmetic: it never stops a send
            log.info("typing indicator for %s failed: %s", mask(target.user), exc)

    async def _pause(self, seconds: float) -> bool:
        """Sleep; True when a shutdown interrupted it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))
        return self.stopping.is_set()

    def _until(self, when: datetime) -> float:
        return min(MAX_RETRY_SECONDS, max(1.0, (when - self._clock()).total_seconds()))


def _interrupted(job: Job, version: str | None, said: str | None = None) -> Outcome:
    outcome = interrupted_outcome(job.id)
    error = f"{outcome.error} ({said})" if said else outcome.error
    return outcome.model_copy(update={"version": version or job.version, "error": error})


def _gate(entry: LedgerEntry) -> str:
    return f"only version {entry.version} may be sent" if entry.version else "withdrawn"


def _jitter(maximum: float) -> Callable[[], float]:
    import random

    return lambda: random.uniform(0.0, maximum) if maximum > 0 else 0.0
