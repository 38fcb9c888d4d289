"""What this poller knows of a series' occurrences: the ledger's entries (from the mirror,
or read afresh at a fire) and the book's hand-overs and schedules, by occurrence instant.

Occurrence ids are `<series id>@<UTC instant>` (`recurrence.occurrence_id`); the book
keeps them like any message id, the mirror indexes the ledger's by series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime

from wasched.common.ledger import LedgerEntry
from wasched.common.recurrence import occurrence_id, parse_occurrence_id
from wasched.poller.plan import HandOver


@dataclass(frozen=True, slots=True)
class Known:
    """What this poller knows of one series' occurrences, by occurrence instant."""

    ledger: Mapping[datetime, LedgerEntry] = field(default_factory=dict)
    handed: Mapping[datetime, HandOver] = field(default_factory=dict)
    """Handed to `wasched.due` (and not settled since)."""
    scheduled: Set[datetime] = frozenset()
    """With a schedule in NATS."""
    ids: frozenset[str] = frozenset()
    """The occurrence ids the book holds (handed over or scheduled)."""


def by_series(keys: Iterable[str]) -> dict[str, set[datetime]]:
    """Occurrence ids among `keys`, by series id."""
    found: dict[str, set[datetime]] = {}
    for key in keys:
        parsed = parse_occurrence_id(key) if "@" in key else None
        if parsed is not None:
            found.setdefault(parsed[0], set()).add(parsed[1])
    return found


def known_for(
    key: str,
    ledger: Mapping[datetime, LedgerEntry],
    handed: Mapping[str, HandOver],
    schedules: Mapping[str, datetime],
    index: Mapping[str, set[datetime]] | None = None,
) -> Known:
    """What the book and the ledger say of one series (`index`: `by_series` of the book's
    keys, when many series are decided at once)."""
    instants = (index if index is not None else by_series([*handed, *schedules])).get(key, set())
    ids = {at: occurrence_id(key, at) for at in instants}
    return Known(
        ledger=ledger,
        handed={at: h for at, i in ids.items() if (h := handed.get(i)) is not None},
        scheduled=frozenset(at for at, i in ids.items() if i in schedules),
        ids=frozenset(ids.values()),
    )
