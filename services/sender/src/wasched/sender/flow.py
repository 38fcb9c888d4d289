"""One message, from its ledger entry to WhatsApp; the claim is taken at the last moment.

Order: a result kept from before (journal) → what the ledger says → expiry → recipient →
lookup (cached, paced) → the pace and the same-text guard (a short wait happens here, a long
one goes back to JetStream) → the media fetched and checked, or the link preview made
(content.py; once the message's turn has come, so a long pace wait never holds a file or
fetches it again and again) → the typing indicator → the ledger, expiry, connection and
lookup once more → claim → build (the media upload) → send → record (handover.py). Nothing before the claim can strand
it, so a cancel or an edit made during the wait is honoured and a crash there costs nothing;
what fails between the claim and the hand-over releases it (worker.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from wasched.common.clock import utcnow
from wasched.common.messages import ErrorKind
from wasched.common.recipients import InvalidRecipient, Recipient, mask, parse_recipient
from wasched.common.waits import wait_event
from wasched.sender import pace
from wasched.sender.attempt import RETRY_SECONDS, Attempt, Parts, Retry, Verdict
from wasched.sender.config import SenderSettings
from wasched.sender.content import Unsendable
from wasched.sender.entries import Entries
from wasched.sender.handover import Handover
from wasched.sender.inbound import Job
from wasched.sender.lookups import LookupFailed
from wasched.sender.pace import Limits, Wait
from wasched.sender.policy import expiry_reason, failed
from wasched.sender.status import Stats
from wasched.sender.transport import Content

log = logging.getLogger("wasched.sender")
HOLD_SECONDS = 60.0
"""A pace wait up to this long happens with the message in hand; a longer one goes back."""
MAX_RETRY_SECONDS = 300.0
ROUNDS = 10


@dataclass(frozen=True, slots=True)
class Ready:
    target: Recipient


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
        self.entries = Entries(parts, settings.sender_liveness_seconds, stats)
        self.handover = Handover(
            parts,
            self.entries,
            timeout=settings.send_timeout_seconds,
            build_timeout=settings.media_upload_timeout_seconds,
            limits=limits,
            stats=stats,
            clock=clock,
            draw=draw or _jitter(settings.send_jitter_seconds),
        )

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
        content = await self._content(job)
        if isinstance(content, Verdict):
            return content
        await self._typing(checked.target)
        checked = await self._check(job)  # the last look before the claim
        if not isinstance(checked, Ready):
            return checked
        return await self.handover.run(attempt, checked.target, content)

    async def _content(self, job: Job) -> Content | Verdict:
        contents = self.parts.contents
        prepared = await contents.prepare(job)
        if not isinstance(prepared, Unsendable):
            return prepared
        if prepared.transient:
            delay = contents.retry_after(job.id)
            if delay is not None:
                log.info(
                    "%s: media not fetched (%s); trying again in %gs",
                    job.id,
                    prepared.reason,
                    delay,
                )
                return Retry(f"media not fetched yet: {prepared.reason}", delay)
        outcome = failed(job.id, prepared.kind, prepared.reason, self._clock(), job.version)
        return await self.entries.final_unsent(job, outcome)

    async def _check(self, job: Job) -> Ready | Verdict:
        verdict = await self.entries.verdict(job)
        if verdict is not None:
            return verdict
        now = self._clock()
        reason = expiry_reason(
            job.scheduled, job.expires_at, now, self.settings.max_lateness_seconds
        )
        if reason:
            outcome = failed(job.id, ErrorKind.EXPIRED, reason, now, job.version)
            return await self.entries.final_unsent(job, outcome)
        try:
            recipient = parse_recipient(job.to)
        except InvalidRecipient as exc:
            outcome = failed(job.id, ErrorKind.INVALID_RECIPIENT, str(exc), now, job.version)
            return await self.entries.final_unsent(job, outcome)
        conn = self.parts.lifecycle.conn
        if not conn.can_send:
            return Retry(f"WhatsApp is {conn.state}")
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
            return await self.entries.final_unsent(job, outcome, recipient.jid)
        return Ready(found.recipient)

    async def _pace_wait(self, job: Job, target: Recipient) -> tuple[Wait | None, bool]:
        """The wait before this send, and whether it is the same-text guard's."""
        state = await self.parts.account.pace()
        now = self._clock()
        wait = pace.next_send(state, now, self.limits)
        self.stats.next_send_at = wait.until if wait else None
        self.stats.waiting_for = wait.why if wait else None
        text_wait = pace.same_text_wait(state, job.pace_text, target.jid, now, self.limits)
        if text_wait is not None and (wait is None or text_wait.until > wait.until):
            self.stats.held_same_text += 1
            log.info("%s: held back: %s", job.id, text_wait.why)
            return text_wait, True
        return wait, False

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
        return await wait_event(self.stopping, seconds)

    def _until(self, when: datetime) -> float:
        return min(MAX_RETRY_SECONDS, max(1.0, (when - self._clock()).total_seconds()))


def _jitter(maximum: float) -> Callable[[], float]:
    return lambda: random.uniform(0.0, maximum) if maximum > 0 else 0.0
