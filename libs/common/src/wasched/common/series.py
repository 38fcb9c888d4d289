"""What wasched does with a repeating message over time: which occurrence to send now,
and what it writes back into the series' entry.

A series stays one entry in the document. Each occurrence is its own at-most-once
unit in the ledger (`recurrence.occurrence_id`); the entry only shows the story:
`nextAt`, `lastSentAt`, `lastStatus`, `occurrences` (how many have been settled) and
`history` (the newest `HISTORY_SIZE` occurrences, oldest first).

After downtime only the latest due occurrence may be sent — if it is within the
lateness limit; earlier ones that were never handed over become `missed`. A series
never sends a burst. A restart is not downtime: with a `grace`, an occurrence whose
successor fell due less than `grace` ago is still sent, late (`CatchUp.late`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Set
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from wasched.common.clock import TimeFormatError, format_utc, parse_utc
from wasched.common.recurrence import Series, next_occurrence, occurrences

HISTORY_SIZE = 10
CATCH_UP_SPAN = timedelta(days=31)
"""How far back a catch-up looks (or `max_lateness`, when longer): a series whose first
time is years back, or that was down for months, is not walked occurrence by occurrence
at every poll. Occurrences before it are neither sent nor counted as missed."""
MAX_HISTORY_ERROR_CHARS = 200
MISSED = "missed"
"""History status of an occurrence that was due while wasched could not send it and a
later occurrence was due too (never a burst). Only in `history`; never a message status."""

_ABSENT = object()
_FINAL_STATUS = {
    "sent": "sent",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
    MISSED: "expired",
}


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The decision for one series at `now`."""

    send: datetime | None = None
    """The occurrence to hand over now (at most one)."""
    expire: datetime | None = None
    """The latest due occurrence, too late to send (`expired`, like a one-time message)."""
    missed: tuple[datetime, ...] = ()
    """Earlier due occurrences never handed over: the newest `keep` of them, oldest first."""
    missed_count: int = 0
    """All of them (may exceed `len(missed)`)."""
    next_at: datetime | None = None
    """The first occurrence after `now` (None: the series has no more)."""
    late: tuple[datetime, ...] = ()
    """Earlier due occurrences to send too, oldest first: the occurrence after each fell due
    less than `grace` ago (a restart, not downtime). Never in `missed`."""


def catch_up(
    series: Series,
    after: datetime | None,
    now: datetime,
    *,
    max_lateness: timedelta | None,
    handled: Set[datetime] = frozenset(),
    keep: int = HISTORY_SIZE,
    grace: timedelta | None = None,
) -> CatchUp:
    """Decide which due occurrence (if any) to send.

    `after`: the newest occurrence already settled in the entry (`settled_through`), None
    for a series that has recorded nothing. `handled`: due occurrences the ledger already
    knows (handed over, or settled): never sent again, never called missed.
    `max_lateness`: None sends however late. `grace`: an earlier occurrence whose successor
    fell due at most this long ago is sent too (`late`), if within `max_lateness`.
    Only the `CATCH_UP_SPAN` before `now` is looked at, unless the series ended before it
    (then its last occurrence is found, once, to be expired: the series ends).
    """
    start = _looked_back(after, now, max_lateness)
    found = _walk(series, start, now, max_lateness, handled, keep, grace)
    if found == CatchUp() and start != after:  # ended before the span: find its end
        return _walk(series, after, now, max_lateness, handled, keep, grace)
    return found


def _walk(
    series: Series,
    start: datetime | None,
    now: datetime,
    max_lateness: timedelta | None,
    handled: Set[datetime],
    keep: int,
    grace: timedelta | None,
) -> CatchUp:
    tail: deque[datetime] = deque(maxlen=keep + 1)
    late: list[datetime] = []
    due = known = 0
    next_at = previous = None
    for instant in occurrences(series, start):
        if instant > now:
            next_at = instant
            break
        if previous is not None and _trails(previous, instant, now, grace, max_lateness):
            late.append(tail.pop())  # `previous` is the tail's last
        due += 1
        known += instant in handled
        tail.append(instant)
        previous = instant if instant not in handled else None
    if not tail:
        return CatchUp(next_at=next_at)
    latest = tail[-1]
    earlier = [d for d in list(tail)[:-1] if d not in handled]
    missed = tuple(earlier[-keep:]) if keep else ()
    missed_count = (due - 1) - (known - (latest in handled)) - len(late)
    found = CatchUp(missed=missed, missed_count=missed_count, next_at=next_at, late=tuple(late))
    if latest in handled:
        return found
    if max_lateness is None or now - latest <= max_lateness:
        return replace(found, send=latest)
    return replace(found, expire=latest)


def _looked_back(
    after: datetime | None, now: datetime, max_lateness: timedelta | None
) -> datetime | None:
    """Where a catch-up starts: `after`, but not before the span (which it includes)."""
    span = max(CATCH_UP_SPAN, max_lateness) if max_lateness is not None else CATCH_UP_SPAN
    try:
        floor = now - span - timedelta(microseconds=1)
    except OverflowError:
        return after
    return floor if after is None or after < floor else after


def _trails(
    occurrence: datetime,
    successor: datetime,
    now: datetime,
    grace: timedelta | None,
    max_lateness: timedelta | None,
) -> bool:
    """Still sent although the next occurrence is due: that one fell due within `grace`."""
    if grace is None or now - successor > grace:
        return False
    return max_lateness is None or now - occurrence <= max_lateness


@dataclass(frozen=True, slots=True)
class OccurrenceOutcome:
    """What happened to one occurrence (from the sender's `Outcome`, the ledger, or a
    `CatchUp` decision)."""

    at: datetime
    status: str
    """`sent`, `failed`, `expired`, `cancelled` or `missed`."""
    sent_at: datetime | None = None
    error: str | None = None
    error_kind: str | None = None

    def entry(self) -> dict[str, Any]:
        item: dict[str, Any] = {"at": format_utc(self.at), "status": self.status}
        if self.sent_at is not None:
            item["sentAt"] = format_utc(self.sent_at)
        if self.error_kind:
            item["errorKind"] = self.error_kind
        if self.error:
            item["error"] = self.error[:MAX_HISTORY_ERROR_CHARS]
        return item


def settled_through(raw: dict[str, Any]) -> datetime | None:
    """The newest occurrence recorded in the entry's `history` (None: nothing yet)."""
    times = recorded(raw)
    return max(times) if times else None


def recorded(raw: dict[str, Any]) -> set[datetime]:
    """The occurrences the entry's `history` lists (readable entries only)."""
    return {at for at, _ in _history(raw)}


def series_fields(
    raw: dict[str, Any],
    series: Series,
    outcomes: Iterable[OccurrenceOutcome] = (),
    *,
    more_missed: int = 0,
    keep: int = HISTORY_SIZE,
) -> dict[str, Any]:
    """The fields to write into the series' entry after `outcomes` (only those that change).

    Idempotent: an outcome already in `history` is not counted again (a `sent` replaces
    another status for the same occurrence, nothing replaces `sent`); one older than a
    full history is ignored. `more_missed` counts missed occurrences not listed. With no
    outcomes it only refreshes `nextAt` (after an edit of the rule, say). When the series
    has no occurrence left, a `pending` entry takes the status of its last occurrence
    (`missed` → `expired`) and `nextAt` becomes null.
    """
    history = dict(_history(raw))
    count = _count(raw.get("occurrences"))
    last_sent = _time(raw.get("lastSentAt"))
    for outcome in outcomes:
        old = history.get(outcome.at)
        if old is not None:
            if old.get("status") != "sent" and old.get("status") != outcome.status:
                history[outcome.at] = outcome.entry()
        elif len(history) < keep or not history or outcome.at > min(history):
            history[outcome.at] = outcome.entry()
            count += 1
        if outcome.sent_at is not None and (last_sent is None or outcome.sent_at > last_sent):
            last_sent = outcome.sent_at
    count += more_missed
    kept = sorted(history)[-keep:] if keep else []
    fields: dict[str, Any] = {"history": [history[at] for at in kept], "occurrences": count}
    if kept:
        fields["lastStatus"] = history[kept[-1]]["status"]
    if last_sent is not None:
        fields["lastSentAt"] = format_utc(last_sent)
    upcoming = next_occurrence(series, kept[-1] if kept else None)
    fields["nextAt"] = format_utc(upcoming) if upcoming is not None else None
    if upcoming is None and kept and raw.get("status") == "pending":
        fields["status"] = _FINAL_STATUS.get(history[kept[-1]]["status"], "expired")
    return {name: value for name, value in fields.items() if raw.get(name, _ABSENT) != value}


def _history(raw: dict[str, Any]) -> list[tuple[datetime, dict[str, Any]]]:
    """Readable entries of `history`; anything else there is dropped at the next write."""
    value = raw.get("history")
    if not isinstance(value, list):
        return []
    entries = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("status"), str):
            continue
        if (at := _time(item.get("at"))) is not None:
            entries.append((at, item))
    return entries


def _time(value: object) -> datetime | None:
    try:
        return parse_utc(value)
    except (TimeFormatError, OverflowError, ValueError):
        return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
