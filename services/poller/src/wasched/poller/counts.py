"""The numbers the heartbeat reports about a poll, and the messages the poller leaves alone.

A message is only ever sent with status `pending`, exactly (statuses are matched
case-sensitively: `"Pending"` or `"paused"` may mean something to another tool, and
sending on a guess is worse than asking). Such messages are not acted on, but they
are never ignored silently: each is counted by reason and named once in the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wasched.common.document import STATUSES, Document, JsonObject
from wasched.common.messages import Status
from wasched.common.recurrence import parse_occurrence_id

NO_STATUS = "no_status"
UNKNOWN_STATUS = "unknown_status"
BAD_ID = "bad_id"
OCCURRENCE_ID = "occurrence_id"
"""A message whose id is that of an occurrence of a repeating message in the document."""


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    pending: int = 0
    due: int = 0
    overdue: int = 0
    oldest_overdue_seconds: float = 0.0
    invalid: int = 0
    ignored: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ignored:
    where: str
    reason: str
    text: str


def ignored(position: int, key: str | None, raw: JsonObject) -> Ignored | None:
    """Why a message that might be meant to go out is left alone, or None."""
    ident = raw.get("id")
    named = isinstance(ident, str) and bool(ident.strip())
    where = f"message {ident}" if named else f"messages[{position}]"
    status = raw.get("status")
    if status is None:
        text = f"{where} has no status; only status 'pending' is sent, so it is left alone"
        return Ignored(where, NO_STATUS, text)
    if status not in STATUSES:
        text = (
            f"{where} has status {status!r}, which wasched does not know, so it is left alone "
            "(statuses are lowercase: pending, sent, failed, expired, cancelled)"
        )
        return Ignored(where, UNKNOWN_STATUS, text)
    if status == Status.PENDING and key is None:
        what = "an empty string" if isinstance(ident, str) else "not a string"
        text = f"{where} has id {ident!r}, {what}; it cannot be addressed, so it is left alone"
        return Ignored(where, BAD_ID, text)
    return None


def owned(key: str, series: set[str]) -> str | None:
    """The series an id of the form `<series id>@<UTC time>` belongs to, when that series is
    in the document: such an id is one of its occurrences', not another message's."""
    found = parse_occurrence_id(key) if series and "@" in key else None
    return found[0] if found is not None and found[0] in series else None


def occurrence_ignored(key: str, owner: str) -> Ignored:
    text = (
        f"message {key} has the id of an occurrence of repeating message {owner!r} "
        "(<id>@<UTC time>); such ids belong to the series, so it is left alone: give it "
        "another id"
    )
    return Ignored(f"message {key}", OCCURRENCE_ID, text)


def count(
    doc: Document,
    waiting: Iterable[datetime],
    invalid: int,
    found: Iterable[Ignored],
    now: datetime,
    overdue_after: timedelta,
) -> Counts:
    """Heartbeat numbers: `waiting` are the times of messages due and with us, a schedule or
    the sender; how late they are; what was rejected and what was left alone."""
    lateness = [(now - t).total_seconds() for t in waiting]
    return Counts(
        total=len(doc.messages),
        pending=sum(raw.get("status") == Status.PENDING for raw in doc.messages),
        due=len(lateness),
        overdue=sum(late > overdue_after.total_seconds() for late in lateness),
        oldest_overdue_seconds=round(max(lateness, default=0.0), 3),
        invalid=invalid,
        ignored=dict(Counter(i.reason for i in found)),
    )
