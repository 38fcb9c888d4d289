"""The hand-over: claim, build, send, and record what WhatsApp said.

The claim names this instance as its holder. The build (for media: the upload to
WhatsApp's media servers, ffprobe/ffmpeg) runs under its own timeout and delivers nothing,
so its failure is `failed` with the reason, never `interrupted`; only a client that is not
connected releases the claim for a retry. After the transport's `send` is called, only the
error's class decides (errors.py): what certainly never reached WhatsApp releases the claim
for a retry, WhatsApp's refusal is `failed`, anything else (a timeout, a connection lost
after the node was written, an error nobody describes) is `interrupted` and never retried.
WhatsApp's answer goes to the local journal before anything needs NATS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from wasched.common import ledger
from wasched.common.events import Outcome
from wasched.common.messages import ErrorKind, Status
from wasched.common.recipients import Recipient
from wasched.sender import pace
from wasched.sender.attempt import Attempt, Parts, Retry, Verdict, interrupted
from wasched.sender.entries import Entries
from wasched.sender.errors import SendErrorKind, classify, explain
from wasched.sender.inbound import Job
from wasched.sender.journal import Kept
from wasched.sender.pace import Limits
from wasched.sender.policy import failed, lateness_seconds
from wasched.sender.status import Stats
from wasched.sender.transport import (
    BuildError,
    Built,
    Content,
    MediaContent,
    TransportError,
)

log = logging.getLogger("wasched.sender")


class Handover:
    def __init__(
        self,
        parts: Parts,
        entries: Entries,
        *,
        timeout: float,
        build_timeout: float,
        limits: Limits,
        stats: Stats,
        clock: Callable[[], datetime],
        draw: Callable[[], float],
    ) -> None:
        self.parts, self.entries, self.timeout = parts, entries, timeout
        self.build_timeout = build_timeout
        self.limits, self.stats, self._clock, self._draw = limits, stats, clock, draw

    async def run(self, attempt: Attempt, target: Recipient, content: Content) -> Verdict:
        job = attempt.job
        claim = await ledger.claim(
            self.parts.kv,
            job.id,
            target.jid,
            version=job.version,
            holder=self.parts.liveness.holder,
        )
        if not claim.won:
            verdict = await self.entries.verdict(job, (claim.entry, claim.revision), read=False)
            return verdict or Retry("lost the claim; looking again", 1.0)
        attempt.claim, attempt.jid = claim, target.jid
        built = await self._build(job, content)
        if isinstance(built, Retry):
            await ledger.release(self.parts.kv, job.id, claim.revision)
            attempt.claim = None
            return built
        if isinstance(built, Outcome):
            return await self._record(attempt, built, claim.revision, target, count=False)
        attempt.sending = True
        try:
            sent = await asyncio.wait_for(
                self.parts.transport.send(job.id, target, built), self.timeout
            )
        except TimeoutError:
            outcome = interrupted(job, said=f"no answer within {self.timeout:g}s")
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
                outcome = interrupted(job, said=f"client said: {exc}")
        except Exception as exc:  # the transport failed in a way it does not describe
            outcome = interrupted(job, said=f"client raised {exc!r}")
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
        return await self._record(attempt, outcome, claim.revision, target, count=True)

    async def _build(self, job: Job, content: Content) -> Built | Outcome | Retry:
        """The message to hand over, or `failed` with why (nothing reached the recipient)."""
        kind = ErrorKind.MEDIA_UNAVAILABLE
        try:
            return await asyncio.wait_for(self.parts.transport.build(content), self.build_timeout)
        except TimeoutError:
            error = (
                f"not ready for WhatsApp within {self.build_timeout:g}s "
                "(MEDIA_UPLOAD_TIMEOUT_SECONDS); nothing was sent"
            )
        except BuildError as exc:
            kind, error = exc.kind, exc.reason
        except TransportError as exc:  # the client is not connected: nothing began
            return Retry(f"nothing reached WhatsApp: {exc}")
        except Exception as exc:  # the client failed in a way it does not describe
            error = f"preparing the message failed: {exc!r}; nothing was sent"
            if not isinstance(content, MediaContent):
                kind = ErrorKind.WHATSAPP_ERROR
        log.warning("%s: %s", job.id, error)
        return failed(job.id, kind, error, self._clock(), job.version)

    async def _record(
        self, attempt: Attempt, outcome: Outcome, revision: int, target: Recipient, *, count: bool
    ) -> Verdict:
        """Journal, ledger over our claim, pace; `count`: the send may have reached WhatsApp."""
        job = attempt.job
        attempt.outcome = outcome.model_copy(update={"to": job.to})
        kept = Kept(attempt.outcome, revision, target.jid)
        await self.parts.records.journal.keep(kept)  # first to disk: nothing needs NATS here
        if outcome.status is Status.SENT and outcome.wa_message_id:
            self.stats.sent_since_start += 1
            await self.parts.index.remember(outcome.wa_message_id, job.id)
        if count:
            await self._count(job, target)
        settled = await self.parts.records.settle(kept)
        attempt.settled = True
        return settled

    async def _count(self, job: Job, target: Recipient) -> None:
        """Every send that may have reached WhatsApp counts towards the pace."""
        at, jitter = self._clock(), self._draw()
        try:
            await self.parts.account.change(
                lambda s: pace.after_send(s, at, job.pace_text, target.jid, jitter, self.limits)
            )
        except Exception as exc:
            log.warning("could not record the send in the pace history: %s", exc)
