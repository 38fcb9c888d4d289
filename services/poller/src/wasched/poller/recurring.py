"""What the poller does with a repeating message: one series + what it knows of its
occurrences + `now` → steps, each for one occurrence id (`<series id>@<UTC instant>`).

Each occurrence is its own at-most-once unit, handled like a one-time message of the
series' current content: scheduled in NATS (`SCHEDULED_AHEAD` at most, within the
horizon), handed over when due, gated in the ledger when the series changes after a
hand-over, expired when too late, interrupted when a claim is stale. What only a series
has: after downtime `series.catch_up` sends the latest due occurrence and records the
earlier ones `missed` (a restart is not downtime: `Limits.grace`); an occurrence still
with the sender when the next one has been due for longer than the grace is expired
(never a burst); an occurrence that is no longer one (the rule changed, `skip`) is
withdrawn; and the series' entry is kept up to date (`SeriesNote`: missed occurrences,
`nextAt`). `SeriesDecision.changes_at` says when the decision can next change while the
document and the ledger stay as they are.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from wasched.common.document import JsonObject
from wasched.common.events import Outcome
from wasched.common.ledger import LedgerEntry, LedgerState, interrupted_outcome
from wasched.common.messages import ErrorKind, ScheduledMessage, Status
from wasched.common.recurrence import (
    Series,
    next_occurrence,
    occurrence_id,
    occurrences,
)
from wasched.common.series import HISTORY_SIZE, MISSED, OccurrenceOutcome, catch_up, recorded
from wasched.common.series import series_fields as fields_for
from wasched.poller.history import SeriesNote
from wasched.poller.limits import expiry_reason
from wasched.poller.occurrences import Known
from wasched.poller.plan import Action, Gate, HandOver, Limits, Screened, Step, screen

SCHEDULED_AHEAD = 10
"""Occurrences of one series scheduled in NATS at a time (within the horizon): enough for a
fast series to stay on time through a poller restart, few enough to keep NATS small."""
_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SeriesDecision:
    steps: list[Step]
    next_at: datetime | None = None
    """The first occurrence after `now` (None: the series has no more, or is not readable)."""
    changes_at: datetime | None = None
    """The earliest moment these steps could differ, with the same document and ledger (a
    due time, the lateness or grace limit of one with the sender, a claim going stale)."""


def decide_series(
    key: str,
    raw: JsonObject,
    entry: LedgerEntry | None,
    known: Known,
    *,
    fired: Set[datetime] = frozenset(),
    now: datetime,
    limits: Limits,
) -> SeriesDecision:
    """One pending series: steps for its occurrences. `fired`: occurrences whose schedules
    fired just now (sent if due, not left to those schedules)."""
    screened = screen(key, raw, entry, now=now, limits=limits)
    if isinstance(screened, Step):
        return SeriesDecision([screened])
    series = screened.reading.series
    assert series is not None, f"{key} is not a series"
    plan = _Plan(key, raw, series, screened, known, fired, now, limits)
    return plan.decide()


@dataclass(slots=True)
class _Plan:
    key: str
    raw: JsonObject
    series: Series
    screened: Screened
    known: Known
    fired: Set[datetime]
    now: datetime
    limits: Limits
    steps: list[Step] = field(default_factory=list)
    changes: list[datetime] = field(default_factory=list)

    def decide(self) -> SeriesDecision:
        if self.screened.gate is not None:  # the series itself was rejected, now corrected
            self.steps.append(
                Step(self.key, Action.WAIT, gate=self.screened.gate, version=self.version)
            )
        history = recorded(self.raw)
        self._restore(history)
        self._in_flight()
        handled = set(self.known.ledger) | set(self.known.handed)
        found = catch_up(
            self.series,
            max(history, default=None),
            self.now,
            max_lateness=self.limits.max_lateness,
            handled=handled,
            grace=self.limits.grace,
        )
        due = [*found.late, *([found.send] if found.send else [])]
        for at in due:
            self._hand_over(at)
        if found.expire is not None:
            self._expire(found.expire, self._too_late(found.expire) or "not sent: too late")
        ahead = self._schedule(handled)
        self._unschedule({*ahead, *due})
        self._note(found.missed, found.missed_count)
        later = [c for c in self.changes if c > self.now]
        return SeriesDecision(self.steps, found.next_at, min(later, default=None))

    @property
    def version(self) -> str:
        return self.screened.version

    def _id(self, at: datetime) -> str:
        return occurrence_id(self.key, at)

    def _message(self, at: datetime) -> ScheduledMessage:
        return replace(self.screened.reading.message, id=self._id(at), scheduled_time=at)

    def _step(self, instant: datetime, action: Action, **fields: object) -> Step:
        return Step(
            self._id(instant),
            action,
            message=self._message(instant),
            version=self.version,
            reading=self.screened.reading,
            **fields,  # type: ignore[arg-type]
        )

    def _restore(self, history: set[datetime]) -> None:
        """Settled in the ledger, missing from `history` (its outcome not written yet, or
        wiped by another writer): put it back. Older than a full history: nowhere to go.
        A settled one the book still holds (rebuilt from the stream) is forgotten there."""
        floor = min(history) if len(history) >= HISTORY_SIZE else None
        for at, entry in self.known.ledger.items():
            if not entry.is_final:
                continue
            if at not in history and (floor is None or at > floor):
                outcome = entry.outcome(self._id(at))
                self.steps.append(Step(self._id(at), Action.RESTORE, outcome=outcome))
            if at in self.known.handed:
                self.steps.append(Step(self._id(at), Action.DROP))

    def _in_flight(self) -> None:
        """Occurrences handed over or gated, not settled: like a one-time message, plus
        withdrawn when no longer an occurrence and expired when the next one is long due."""
        ledger, handed = self.known.ledger, self.known.handed
        open_ = {at for at, e in ledger.items() if not e.is_final}
        open_ |= {at for at in handed if at not in ledger or not ledger[at].is_final}
        for at in sorted(open_):
            entry, hand = ledger.get(at), handed.get(at)
            if entry is not None and entry.state is LedgerState.CLAIMED:
                self._claimed(at, entry)
            elif not self._is_occurrence(at):
                if hand is not None and (entry is None or entry.version is not None):
                    self.steps.append(Step(self._id(at), Action.WITHDRAW))
            elif (late := self._too_late(at)) is not None:
                self._expire(at, late)
            else:
                self._unclaimed(at, entry, hand)

    def _claimed(self, at: datetime, entry: LedgerEntry) -> None:
        if self.now - entry.at >= self.limits.claim_stale:
            outcome = interrupted_outcome(self._id(at))
            self.steps.append(Step(self._id(at), Action.INTERRUPT, outcome=outcome))
            return
        self.steps.append(self._step(at, Action.HOLD))
        self.changes.append(entry.at + self.limits.claim_stale)

    def _unclaimed(self, at: datetime, entry: LedgerEntry | None, hand: HandOver | None) -> None:
        gated = entry is not None and entry.state is LedgerState.SUPERSEDED
        allowed = entry is not None and entry.allows(self.version)
        live = hand is not None and hand.version == self.version and not hand.regated
        if live and (allowed or not gated):
            self.steps.append(self._step(at, Action.HOLD))
            self.changes += self._limits_of(at)
            return
        older = hand is not None and hand.version != self.version
        gate = Gate.SUPERSEDE if not allowed and (gated or older) else None
        if at > self.now:  # never early: its schedule hands it over at its time
            self.steps.append(self._step(at, Action.SCHEDULE, at=at, gate=gate))
        else:
            self.steps.append(self._step(at, Action.DISPATCH, gate=gate))

    def _hand_over(self, at: datetime) -> None:
        """Due and never handed over: now, unless a schedule for it is about to fire (for
        `fire_grace` at most, as a one-time message's)."""
        overdue = at + self.limits.fire_grace
        if at in self.known.scheduled and at not in self.fired and self.now < overdue:
            self.steps.append(self._step(at, Action.SCHEDULE, at=at))
            self.changes.append(overdue)
        else:
            self.steps.append(self._step(at, Action.DISPATCH))

    def _expire(self, at: datetime, reason: str) -> None:
        outcome = Outcome(
            id=self._id(at),
            status=Status.EXPIRED,
            at=self.now,
            error=reason,
            error_kind=ErrorKind.EXPIRED,
            version=self.version,
        )
        self.steps.append(self._step(at, Action.EXPIRE, outcome=outcome))

    def _schedule(self, handled: Set[datetime]) -> list[datetime]:
        """The next occurrences within the horizon get their schedules."""
        ahead: list[datetime] = []
        horizon = self.now + self.limits.horizon
        for at in occurrences(self.series, self.now):
            if at > horizon or len(ahead) == SCHEDULED_AHEAD:
                self.changes.append(at - self.limits.horizon if at > horizon else ahead[0])
                break
            ahead.append(at)
            if at not in handled:
                self.steps.append(self._step(at, Action.SCHEDULE, at=at))
        if ahead:
            self.changes.append(ahead[0])  # due: the fire hands it over, the window moves
        return ahead

    def _unschedule(self, wanted: Set[datetime]) -> None:
        """Schedules of instants that are no longer (or not yet) wanted are removed; the
        next poll makes them again if the series changes back."""
        for at in sorted(self.known.scheduled - wanted):
            if at not in self.known.handed:
                self.steps.append(Step(self._id(at), Action.DROP))

    def _note(self, missed: tuple[datetime, ...], count: int) -> None:
        listed = tuple(OccurrenceOutcome(at=at, status=MISSED) for at in missed)
        note = SeriesNote(self.key, listed, count - len(listed))
        if listed or note.more_missed or fields_for(self.raw, self.series):
            self.steps.append(Step(self.key, Action.NOTE, note=note))

    def _is_occurrence(self, at: datetime) -> bool:
        return next_occurrence(self.series, at - _JUST_BEFORE) == at

    def _too_late(self, at: datetime) -> str | None:
        """Why an occurrence must not go out now: the lateness limit, or the next occurrence
        has been due for longer than the grace (the sender was down: never a burst)."""
        reason = expiry_reason(self._message(at), self.now, self.limits)
        if reason is not None:
            return reason
        following = next_occurrence(self.series, at)
        if following is not None and self.now - following > self.limits.grace:
            return (
                f"not sent: the next occurrence ({following:%Y-%m-%d %H:%M:%S} UTC) has been "
                "due for longer than a restart takes; a repeating message never sends a burst"
            )
        return None

    def _limits_of(self, at: datetime) -> list[datetime]:
        found = [at + self.limits.max_lateness] if self.limits.max_lateness else []
        following = next_occurrence(self.series, at)
        return found + ([following + self.limits.grace] if following is not None else [])


def decide_fire(
    key: str,
    fired: Set[datetime],
    raw: JsonObject,
    entry: LedgerEntry | None,
    known: Known,
    *,
    now: datetime,
    limits: Limits,
) -> list[Step]:
    """Schedules of occurrences of series `key` fired. A series cancelled by then is cancelled
    for those occurrences (as a one-time message at its time); one no longer pending holds
    them back; a pending one is decided again, once for all of them."""
    if raw.get("status") == Status.PENDING:
        return decide_series(key, raw, entry, known, fired=fired, now=now, limits=limits).steps
    steps = []
    for at in sorted(fired):
        if raw.get("status") == Status.CANCELLED:
            action = Action.CANCEL
        else:
            action = Action.WITHDRAW if at in known.handed else Action.DROP
        steps.append(Step(occurrence_id(key, at), action))
    return steps
