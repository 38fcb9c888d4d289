"""Pure decisions of the send path: what a ledger entry means, lateness, expiry, replies, pairing."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from wasched.common.clock import format_utc
from wasched.common.events import Outcome, Reply, SenderState
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status


class Existing(StrEnum):
    REPUBLISH = "republish"
    """Final already: never send again; publish the recorded outcome (repairs a lost one)."""
    INTERRUPTED = "interrupted"
    """Claimed without an outcome (a crash or timeout mid-send): never send again."""


def existing_verdict(entry: LedgerEntry) -> Existing:
    return Existing.INTERRUPTED if entry.state is LedgerState.CLAIMED else Existing.REPUBLISH


def expiry_reason(
    scheduled: datetime, expires_at: datetime | None, now: datetime, max_lateness: float
) -> str | None:
    """Why it must not be sent any more, or None. `max_lateness` 0 = send however late."""
    if expires_at is not None and now > expires_at:
        return f"not sent: it expired at {format_utc(expires_at)} (expiresAt)"
    late = (now - scheduled).total_seconds()
    if max_lateness > 0 and late > max_lateness:
        return (
            f"not sent: {late:.0f}s after its scheduled time, more than "
            f"MAX_LATENESS_SECONDS={max_lateness:g}"
        )
    return None


def lateness_seconds(scheduled: datetime, sent_at: datetime) -> float:
    return round(max(0.0, (sent_at - scheduled).total_seconds()), 3)


def failed(message_id: str, kind: ErrorKind, error: str, now: datetime) -> Outcome:
    status = Status.EXPIRED if kind is ErrorKind.EXPIRED else Status.FAILED
    return Outcome(id=message_id, status=status, at=now, error=error, error_kind=kind)


def reply_for(outcome: Outcome) -> Reply:
    if outcome.status is Status.SENT:
        return Reply(ok=True, id=outcome.id)
    return Reply(ok=False, id=outcome.id, error=outcome.error or f"message {outcome.status}")


def pairing_refusal(state: SenderState, transport: str, detail: str | None) -> str | None:
    """Why a pair code cannot be given now, or None when the sender is waiting to be linked."""
    if transport == "dryrun":
        return "dryrun transport does not pair: set WHATSAPP_TRANSPORT=neonize"
    if state == "pairing":
        return None
    if state == "connected":
        return "WhatsApp is already linked and connected; nothing to pair"
    return f"the sender cannot pair now: it is {state}" + (f" ({detail})" if detail else "")
