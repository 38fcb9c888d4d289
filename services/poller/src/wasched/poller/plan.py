"""What the poller does with each message, at a poll or when a schedule fires.

Pure decisions over the parsed document, the ledger and `now`; the service
only executes the returned steps. Order matters: the ledger is the truth, so
a known outcome is restored before anything else is considered, and an id
that was already handed to the sender is never handed over again.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from wasched.common.clock import format_utc
from wasched.common.document import Document, JsonObject
from wasched.common.events import DueMessage, Outcome
from wasched.common.ledger import LedgerEntry, interrupted_outcome
from wasched.common.messages import (
    ErrorKind,
    MessageInvalid,
    ScheduledMessage,
    Status,
    read_message,
)
from wasched.common.settings import Settings

CLAIM_STALE = timedelta(minutes=10)
"""A claim this old with no outcome means the sender died mid-send (WhatsApp's own timeout is 75 s)."""

OVERDUE_AFTER = timedelta(seconds=60)
"""A pending message this far past its time counts as overdue in the heartbeat."""


class Action(StrEnum):
    DISPATCH = "dispatch"  # due now: publish to wasched.due
    SCHEDULE = "schedule"  # within the horizon: a JetStream schedule at `at`
    WAIT = "wait"  # beyond the horizon: nothing yet
    HOLD = "hold"  # with the sender already: wait for its outcome
    EXPIRE = "expire"  # too late, or past its expiresAt: never sent
    REJECT = "reject"  # cannot be valid: failed, never sent
    DUPLICATE = "duplicate"  # repeats an earlier message's id: failed (ledger key `id#n`)
    RESTORE = "restore"  # the ledger knows the outcome: put it back in the document
    CANCEL = "cancel"  # handed on, now deleted or cancelled: record `cancelled` in the ledger
    DROP = "drop"  # handed on, now settled by someone: forget it


@dataclass(frozen=True, slots=True)
class Limits:
    horizon: timedelta
    max_lateness: timedelta | None
    claim_stale: timedelta = CLAIM_STALE
    overdue_after: timedelta = OVERDUE_AFTER

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        lateness = settings.max_lateness_seconds
        return cls(
            horizon=timedelta(seconds=settings.schedule_horizon_seconds),
            max_lateness=timedelta(seconds=lateness) if lateness > 0 else None,
        )


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    action: Action
    message: ScheduledMessage | None = None
    at: datetime | None = None
    outcome: Outcome | None = None

    def due_message(self) -> DueMessage:
        """The payload for wasched.due and for schedules (always from the current document)."""
        msg = self.message
        assert msg is not None, f"{self.action} step carries no message"
        return DueMessage(
            id=msg.id,
            to=msg.to,
            message=msg.text,
            contact_name=msg.contact_name,
            scheduled_time=msg.scheduled_time,
            expires_at=msg.expires_at,
        )


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    pending: int = 0
    due: int = 0
    overdue: int = 0
    oldest_overdue_seconds: float = 0.0
    invalid: int = 0


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    def of(self, action: Action) -> list[Step]:
        return [step for step in self.steps if step.action is action]


def decide(
    key: str,
    raw: JsonObject,
    entry: LedgerEntry | None,
    *,
    dispatched: bool,
    now: datetime,
    limits: Limits,
) -> Step:
    """One pending message: what to do with it now."""
    ident = raw.get("id")
    if key != ident:
        reason = f"id {ident!r} repeats an earlier message's id; give it a new id to send it"
        return Step(key, Action.DUPLICATE, outcome=_failed(key, ErrorKind.VALIDATION, reason, now))
    if entry is not None and entry.is_final:
        return Step(key, Action.RESTORE, outcome=entry.outcome(key))
    if entry is not None:
        if now - entry.at >= limits.claim_stale:
            return Step(key, Action.RESTORE, outcome=interrupted_outcome(key))
        return Step(key, Action.HOLD, message=_readable(raw))  # counted if overdue (a hung send)
    try:
        msg = read_message(raw)
    except MessageInvalid as exc:
        return Step(key, Action.REJECT, outcome=_failed(key, exc.kind, exc.reason, now))
    late = expiry_reason(msg, now, limits)
    if late is not None:
        outcome = Outcome(
            id=key, status=Status.EXPIRED, at=now, error=late, error_kind=ErrorKind.EXPIRED
        )
        return Step(key, Action.EXPIRE, message=msg, outcome=outcome)
    if dispatched:
        return Step(key, Action.HOLD, message=msg)
    if msg.scheduled_time <= now:
        return Step(key, Action.DISPATCH, message=msg)
    if msg.scheduled_time <= now + limits.horizon:
        return Step(key, Action.SCHEDULE, message=msg, at=msg.scheduled_time)
    return Step(key, Action.WAIT, message=msg)


def decide_fire(
    fired: DueMessage,
    raw: JsonObject | None,
    entry: LedgerEntry | None,
    *,
    dispatched: bool,
    now: datetime,
    limits: Limits,
) -> Step:
    """A schedule fired: forward only if the message is still pending with that time."""
    key = fired.id
    if raw is None or raw.get("status") == Status.CANCELLED:
        return Step(key, Action.CANCEL)
    if raw.get("status") != Status.PENDING:
        return Step(key, Action.DROP)
    step = decide(key, raw, entry, dispatched=dispatched, now=now, limits=limits)
    if step.action is Action.SCHEDULE and step.at == fired.scheduled_time:
        return Step(key, Action.DISPATCH, message=step.message)  # its time, by NATS' clock
    return step


def plan(
    doc: Document,
    ledger: Mapping[str, LedgerEntry],
    *,
    dispatched: Set[str],
    tracked: Set[str],
    now: datetime,
    limits: Limits,
) -> Plan:
    """Every pending message, plus every id handed to NATS (`tracked`) that is no longer pending."""
    result = Plan()
    pending_keys: set[str] = set()
    status_by_key: dict[str, object] = {}
    no_id = 0
    for key, raw in doc.keyed():
        if raw.get("status") != Status.PENDING:
            if key is not None:
                status_by_key[key] = raw.get("status")
            continue
        if key is None:
            no_id += 1
            continue
        pending_keys.add(key)
        step = decide(
            key, raw, ledger.get(key), dispatched=key in dispatched, now=now, limits=limits
        )
        result.steps.append(step)
    for key in sorted(tracked - pending_keys):
        gone = key not in status_by_key or status_by_key[key] == Status.CANCELLED
        result.steps.append(Step(key, Action.CANCEL if gone else Action.DROP))
    result.counts = count(doc, result.steps, now, limits, no_id)
    return result


def count(doc: Document, steps: list[Step], now: datetime, limits: Limits, no_id: int) -> Counts:
    """Heartbeat numbers: messages waiting on us or on the sender, and how late they are."""
    waiting = [
        s.message.scheduled_time
        for s in steps
        if s.action in {Action.DISPATCH, Action.HOLD}
        and s.message is not None
        and s.message.scheduled_time <= now
    ]
    lateness = [(now - t).total_seconds() for t in waiting]
    invalid = sum(s.action in {Action.REJECT, Action.DUPLICATE} for s in steps) + no_id
    return Counts(
        total=len(doc.messages),
        pending=sum(raw.get("status") == Status.PENDING for raw in doc.messages),
        due=len(waiting),
        overdue=sum(late > limits.overdue_after.total_seconds() for late in lateness),
        oldest_overdue_seconds=round(max(lateness, default=0.0), 3),
        invalid=invalid,
    )


def expiry_reason(msg: ScheduledMessage, now: datetime, limits: Limits) -> str | None:
    if msg.expires_at is not None and now > msg.expires_at:
        return f"not sent: past its expiresAt ({format_utc(msg.expires_at)})"
    if limits.max_lateness is not None and now - msg.scheduled_time > limits.max_lateness:
        late = now - msg.scheduled_time
        return (
            f"not sent: {_span(late)} late, more than the "
            f"{_span(limits.max_lateness)} allowed (MAX_LATENESS_SECONDS)"
        )
    return None


def _readable(raw: JsonObject) -> ScheduledMessage | None:
    try:
        return read_message(raw)
    except MessageInvalid:
        return None


def _failed(key: str, kind: ErrorKind, reason: str, now: datetime) -> Outcome:
    return Outcome(id=key, status=Status.FAILED, at=now, error=reason, error_kind=kind)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    parts += [f"{minutes} min" if minutes else "", f"{secs} s" if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0 s"
