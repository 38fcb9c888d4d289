"""What the poller does with each message, at a poll or when a schedule fires.

Pure decisions over the parsed document, the ledger, what was handed over and
`now`; the service only executes the returned steps. Order matters: the ledger
is the truth, so a known outcome is restored before anything else is considered.
Every hand-over carries the message's content version; when the message changes
after it was handed over, the earlier hand-over is superseded (a ledger gate) and
the new version goes out at its own time. Removal is only ever concluded from a
readable document: at a poll a withdrawn hand-over is only gated (it may come
back), and a message is cancelled for good only when its schedule fires.

A repeating message is decided by `recurring` (one series, its occurrences' ledger
entries and `now` → steps for each occurrence id); it shares `screen` with `decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from wasched.common.document import Document, JsonObject
from wasched.common.events import DueMessage, Outcome, Receipt
from wasched.common.ledger import LedgerEntry, LedgerState, interrupted_outcome
from wasched.common.messages import (
    ErrorKind,
    MessageInvalid,
    ScheduledMessage,
    Status,
    content_version,
)
from wasched.poller.counts import Counts, Ignored, count, ignored, occurrence_ignored, owned
from wasched.poller.history import SeriesNote
from wasched.poller.limits import Limits, expiry_reason, settings_problem
from wasched.poller.reading import Reading, due_message, read, series_keys

__all__ = ["Action", "Gate", "HandOver", "Limits", "Plan", "Step", "decide", "decide_fire"]
__all__ += ["decide_handed", "decide_message", "expiry_reason", "plan"]
__all__ += ["settings_problem", "waiting_since"]


class Action(StrEnum):
    DISPATCH = "dispatch"  # due now: publish to wasched.due
    SCHEDULE = "schedule"  # within the horizon: a JetStream schedule at `at`
    WAIT = "wait"  # beyond the horizon: nothing yet
    HOLD = "hold"  # with the sender already: wait for its outcome
    EXPIRE = "expire"  # too late, or past its expiresAt: never sent
    REJECT = "reject"  # cannot be valid: failed, never sent
    DUPLICATE = "duplicate"  # repeats an earlier message's id: failed (ledger key `id#n`)
    RESTORE = "restore"  # the ledger knows the outcome (or receipts): put them back
    INTERRUPT = "interrupt"  # claimed long ago, no outcome: `interrupted`, ledger and document
    WITHDRAW = "withdraw"  # handed over, now gone or not pending: gate it (reversible)
    CANCEL = "cancel"  # its schedule fired and it is gone or cancelled: `cancelled` for good
    DROP = "drop"  # handed over or scheduled, now settled by someone: forget it
    NOTE = "note"  # a series' own record (missed occurrences, nextAt): into its entry


class Gate(StrEnum):
    """A ledger gate to move before the step, so that only this version may be sent."""

    SUPERSEDE = "supersede"  # an earlier version was handed over (or a gate names another)
    REOPEN = "reopen"  # a rejection of another version: the user corrected it


@dataclass(frozen=True, slots=True)
class HandOver:
    """What this poller handed to the sender for one id (rebuilt from the stream)."""

    version: str | None
    """None: handed over by a poller older than versions (treated as some other version)."""
    regated: bool = False
    """A gate refused it for a while: the sender may have dropped it, so hand it over again."""


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    action: Action
    message: ScheduledMessage | None = None
    at: datetime | None = None
    outcome: Outcome | None = None
    version: str | None = None
    gate: Gate | None = None
    receipts: tuple[Receipt, ...] = ()
    note: SeriesNote | None = None
    reading: Reading | None = None
    """How the message was read (its kinds: media, link preview), for the hand-over."""

    def due_message(self) -> DueMessage:
        """The payload for wasched.due and for schedules (always from the current document)."""
        msg = self.message
        assert msg is not None, f"{self.action} step carries no message"
        return due_message(msg, self.version, self.reading)


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    ignored: list[Ignored] = field(default_factory=list)
    series: list[tuple[str, datetime]] = field(default_factory=list)
    """(id, next occurrence) of each pending series, soonest first."""

    def of(self, action: Action) -> list[Step]:
        return [step for step in self.steps if step.action is action]


@dataclass(slots=True)
class Screened:
    """A pending message that passed `screen`: read, with its version and any gate to move."""

    reading: Reading
    version: str
    gate: Gate | None


def screen(
    key: str, raw: JsonObject, entry: LedgerEntry | None, *, now: datetime, limits: Limits
) -> Step | Screened:
    """What every pending message goes through first: a repeated id, what the ledger knows of
    this id (restore, reopen, interrupt, hold), and reading it. A Step ends the decision."""
    version = content_version(raw)
    if key != raw.get("id"):
        reason = (
            f"id {raw.get('id')!r} repeats an earlier message's id; give it a new id to send it"
        )
        outcome = _failed(key, ErrorKind.VALIDATION, reason, now, version)
        return Step(key, Action.DUPLICATE, outcome=outcome, version=version)
    gate: Gate | None = None
    if entry is not None and entry.is_final:
        if not _reopens(entry, version):
            return Step(
                key, Action.RESTORE, outcome=entry.outcome(key), receipts=_receipts(key, entry)
            )
        gate = Gate.REOPEN
    elif entry is not None and entry.state is LedgerState.CLAIMED:
        if now - entry.at >= limits.claim_stale:
            return Step(key, Action.INTERRUPT, outcome=interrupted_outcome(key), version=version)
        readable = _readable(raw, limits)
        msg = readable.message if readable else None
        return Step(key, Action.HOLD, message=msg, version=version, reading=readable)
    try:
        reading = read(raw, limits.zone, limits.media_prefix)
    except MessageInvalid as exc:  # a verdict on a corrected message replaces the old one
        outcome = _failed(key, exc.kind, exc.reason, now, version)
        return Step(key, Action.REJECT, outcome=outcome, version=version, gate=gate)
    return Screened(reading, version, gate)


def decide(
    key: str,
    raw: JsonObject,
    entry: LedgerEntry | None,
    *,
    handed: HandOver | None = None,
    scheduled_at: datetime | None = None,
    now: datetime,
    limits: Limits,
) -> Step:
    """One pending message: what to do with it now."""
    screened = screen(key, raw, entry, now=now, limits=limits)
    if isinstance(screened, Step):
        return screened
    reading, version, gate = screened.reading, screened.version, screened.gate
    if reading.series is not None:  # handed over before it became a series: never as one
        return Step(key, Action.WITHDRAW if handed is not None else Action.DROP)
    msg = reading.message
    late = expiry_reason(msg, now, limits)
    if late is not None:
        outcome = Outcome(
            id=key,
            status=Status.EXPIRED,
            at=now,
            error=late,
            error_kind=ErrorKind.EXPIRED,
            version=version,
        )
        return Step(key, Action.EXPIRE, message=msg, outcome=outcome, version=version, gate=gate)
    gated = entry is not None and entry.state is LedgerState.SUPERSEDED
    allowed = entry is not None and entry.allows(version)
    if gate is None:
        live = handed is not None and handed.version == version and not handed.regated
        if live and (allowed or not gated):
            return Step(key, Action.HOLD, message=msg, version=version, reading=reading)
        older = handed is not None and handed.version != version
        if not allowed and (gated or older):  # something else could still be claimed
            gate = Gate.SUPERSEDE
    return _when(key, reading, version, gate, scheduled_at, now, limits)


def _when(
    key: str,
    reading: Reading,
    version: str,
    gate: Gate | None,
    scheduled_at: datetime | None,
    now: datetime,
    limits: Limits,
) -> Step:
    """Hand over now, schedule for its time, or wait: a schedule for its very time is left
    to fire (the fire re-reads the document; a slow poll's copy may be older), but only for
    `fire_grace`: a schedule NATS did not fire by then is overtaken by the poll."""
    msg = reading.message
    at = msg.scheduled_time
    if at <= now and (scheduled_at != at or now >= at + limits.fire_grace):
        action = Action.DISPATCH
    elif at <= now + limits.horizon:
        action = Action.SCHEDULE
    else:
        return Step(key, Action.WAIT, message=msg, version=version, gate=gate, reading=reading)
    when = at if action is Action.SCHEDULE else None
    return Step(key, action, message=msg, at=when, version=version, gate=gate, reading=reading)


def decide_fire(
    fired: DueMessage,
    raw: JsonObject | None,
    entry: LedgerEntry | None,
    *,
    handed: HandOver | None,
    now: datetime,
    limits: Limits,
) -> Step:
    """A schedule fired: forward only if the message is still pending with that time. At its
    time, a message a readable document no longer holds (or holds cancelled) is cancelled."""
    key = fired.id
    if raw is None or raw.get("status") == Status.CANCELLED:
        return Step(key, Action.CANCEL)
    if raw.get("status") != Status.PENDING:
        return Step(key, Action.WITHDRAW if handed is not None else Action.DROP)
    step = decide(key, raw, entry, handed=handed, now=now, limits=limits)
    if step.action is Action.SCHEDULE and step.at == fired.scheduled_time:
        return replace(step, action=Action.DISPATCH, at=None)  # its time, by NATS' clock
    return step


def plan(
    doc: Document,
    ledger: Mapping[str, LedgerEntry],
    *,
    handed: Mapping[str, HandOver],
    schedules: Mapping[str, datetime],
    now: datetime,
    limits: Limits,
    ledgered: Mapping[str, Mapping[datetime, LedgerEntry]] | None = None,
) -> Plan:
    """Every pending message; every hand-over the document no longer holds pending (gated,
    not cancelled: it may come back); receipts a stale writer wiped from sent messages.
    `ledgered`: the ledger entries of each series' occurrences, by series id.
    (`index.PlanIndex` keeps this plan between polls and decides again only what changed.)"""
    from wasched.poller import occurrences, recurring  # both build on this module's steps

    result = Plan()
    pending: set[str] = set()
    series = series_keys(doc)
    index = occurrences.by_series([*handed, *schedules]) if series else {}
    for position, (key, raw) in enumerate(doc.keyed()):
        status = raw.get("status")
        if status == Status.PENDING and key is not None and (owner := owned(key, series)):
            result.ignored.append(occurrence_ignored(key, owner))
        elif status == Status.PENDING and key is not None and key in series:
            entries = (ledgered or {}).get(key, {})
            known = occurrences.known_for(key, entries, handed, schedules, index)
            decision = recurring.decide_series(
                key, raw, ledger.get(key), known, now=now, limits=limits
            )
            result.steps += decision.steps
            pending |= known.ids  # its occurrences are the series' own business
            result.series += [(key, decision.next_at)] if decision.next_at else []
        elif key is not None:
            if status == Status.PENDING:
                pending.add(key)
            step = decide_message(
                key,
                raw,
                ledger.get(key),
                handed=handed.get(key),
                scheduled_at=schedules.get(key),
                now=now,
                limits=limits,
            )
            if step is not None:
                result.steps.append(step)
        found = ignored(position, key, raw)
        if found is not None:
            result.ignored.append(found)
    for key in sorted(handed.keys() - pending):
        step = decide_handed(key, ledger.get(key))
        if step is not None:
            result.steps.append(step)
    waiting = [t for s in result.steps if (t := waiting_since(s)) is not None and t <= now]
    invalid = sum(s.action in INVALID for s in result.steps)
    result.counts = count(doc, waiting, invalid, result.ignored, now, limits.overdue_after)
    result.series.sort(key=lambda item: item[1])
    return result


def decide_message(
    key: str,
    raw: JsonObject,
    entry: LedgerEntry | None,
    *,
    handed: HandOver | None,
    scheduled_at: datetime | None,
    now: datetime,
    limits: Limits,
) -> Step | None:
    """One message of the document: a pending one is decided; a sent one gets back the
    receipts a stale writer wiped; others need nothing."""
    status = raw.get("status")
    if status == Status.PENDING:
        return decide(
            key, raw, entry, handed=handed, scheduled_at=scheduled_at, now=now, limits=limits
        )
    if status == Status.SENT and entry:
        wiped = tuple(r for r in _receipts(key, entry) if raw.get(_FIELD[r.kind]) is None)
        if wiped:
            return Step(key, Action.RESTORE, receipts=wiped)
    return None


def decide_handed(key: str, entry: LedgerEntry | None) -> Step | None:
    """A hand-over the document no longer holds pending."""
    if entry is not None and entry.state is not LedgerState.SUPERSEDED:
        return Step(key, Action.DROP)  # claimed or settled: its outcome flows
    if entry is None or entry.version is not None:
        return Step(key, Action.WITHDRAW)
    return None


def waiting_since(step: Step) -> datetime | None:
    """The time of a message that is with us, a schedule or the sender (for the counts)."""
    if step.action in _WITH_US and step.message is not None:
        return step.message.scheduled_time
    return None


_FIELD = {"delivered": "deliveredAt", "read": "readAt"}
_WITH_US = {Action.DISPATCH, Action.HOLD, Action.SCHEDULE}
INVALID = frozenset({Action.REJECT, Action.DUPLICATE})


def _reopens(entry: LedgerEntry, version: str) -> bool:
    """A verdict nothing was sent for, about another version: the user corrected it."""
    return entry.reopenable and entry.version is not None and entry.version != version


def _receipts(key: str, entry: LedgerEntry) -> tuple[Receipt, ...]:
    times = (("delivered", entry.delivered_at), ("read", entry.read_at))
    return tuple(Receipt(id=key, kind=kind, at=at) for kind, at in times if at is not None)  # type: ignore[arg-type]


def _readable(raw: JsonObject, limits: Limits) -> Reading | None:
    try:
        return read(raw, limits.zone, limits.media_prefix)
    except MessageInvalid:
        return None


def _failed(key: str, kind: ErrorKind, reason: str, now: datetime, version: str) -> Outcome:
    return Outcome(
        id=key, status=Status.FAILED, at=now, error=reason, error_kind=kind, version=version
    )
