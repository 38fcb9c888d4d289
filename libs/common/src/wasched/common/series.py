"""What wasched does with a repeating message over time: which occurrence to send now,
and what it writes back into the series' entry.

A series stays one entry in the document. Each occurrence is its own at-most-once
unit in the ledger (`recurrence.occurrence_id`); the entry only shows the story:
`nextAt`, `lastSentAt`, `lastStatus`, `occurrences` (how many have been settled) and
`history` (the newest `HISTORY_SIZE` occurrences, oldest first).

After downtime only the latest due occurrence may be sent — if it is within the
lateness limit; earlier ones that were never handed over become `missed`. A series
never sends a burst.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wasched.common.clock import TimeFormatError, format_utc, parse_utc
from wasched.common.recurrence import Series, next_occurrence, occurrences

HISTORY_SIZE = 10
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


def catch_up(
    series: Series,
    after: datetime | None,
    now: datetime,
    *,
    max_lateness: timedelta | None,
    handled: Set[datetime] = frozenset(),
    keep: int = HISTORY_SIZE,
) -> CatchUp:
    """Decide which due occurrence (if any) to send.

    `after`: the newest occurrence already settled in the entry (`settled_through`), None
    for a series that has recorded nothing. `handled`: due occurrences the ledger already
    knows (handed over, or settled): never sent again, never called missed.
    `max_lateness`: None sends however late.
    """
    tail: deque[datetime] = deque(maxlen=keep + 1)
    due = known = 0
    next_at = None
    for instant in occurrences(series, after):
        if instant > now:
            next_at = instant
            break
        due += 1
        known += instant in handled
        tail.append(instant)
    if not tail:
        return CatchUp(next_at=next_at)
    latest = tail[-1]
    missed = tuple([d for d in list(tail)[:-1] if d not in handled][-keep:]) if keep else ()
    missed_count = (due - 1) - (known - (latest in handled))
    if latest in handled:
        return CatchUp(missed=missed, missed_count=missed_count, next_at=next_at)
    if max_lateness is None or now - latest <= max_lateness:
        return CatchUp(send=latest, missed=missed, missed_count=missed_count, next_at=next_at)
    return CatchUp(expire=latest, missed=missed, missed_count=missed_count, next_at=next_at)


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
    times = [at for at, _ in _history(raw)]
    return max(times) if times else None


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
