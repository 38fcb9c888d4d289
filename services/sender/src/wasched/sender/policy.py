"""Pure decisions of the send path: what a ledger entry means, lateness, expiry, replies, pairing."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from wasched.common.clock import format_utc
from wasched.common.events import Outcome, Reply, SenderState
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status


class Holder(StrEnum):
    """The sender instance named in a claim, as far as its liveness key says."""

    ME = "me"
    ALIVE = "alive"
    SUSPECT = "suspect"
    """Its key is missing, not yet for long enough to be sure."""
    GONE = "gone"


class Standing(StrEnum):
    FREE = "free"
    """No entry, or a gate that allows this version: it may be claimed."""
    OUT_OF_DATE = "out_of_date"
    """A gate for another version (or none): this hand-over is stale; send nothing, say nothing."""
    FINAL = "final"
    """Settled already: never send again; publish the recorded outcome (repairs a lost one)."""
    HELD = "held"
    """Claimed by a sender that is (or may be) still sending: leave it alone, look later."""
    ORPHANED = "orphaned"
    """Claimed by a sender that is gone, outcome unknown: `interrupted`, never sent again."""


def standing(entry: LedgerEntry | None, version: str | None, holder: Holder | None) -> Standing:
    """What an existing ledger entry means for a hand-over of `version`.

    `holder` is the liveness of a claim's holder (ignored for other states). A claim held by
    this very instance is orphaned: one message is handled at a time, so an old claim of ours
    that is not the one in hand was left by an attempt that ended without an outcome.
    """
    if entry is None:
        return Standing.FREE
    match entry.state:
        case LedgerState.SUPERSEDED:
            return Standing.FREE if entry.allows(version) else Standing.OUT_OF_DATE
        case LedgerState.CLAIMED:
            if holder in (Holder.ALIVE, Holder.SUSPECT):
                return Standing.HELD
            return Standing.ORPHANED
    return Standing.FINAL


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


def failed(
    message_id: str, kind: ErrorKind, error: str, now: datetime, version: str | None = None
) -> Outcome:
    status = Status.EXPIRED if kind is ErrorKind.EXPIRED else Status.FAILED
    return Outcome(
        id=message_id, status=status, at=now, error=error, error_kind=kind, version=version
    )


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
