"""How what happened to a series' occurrences lands in the series' one entry.

Each occurrence is its own unit in the ledger and on `wasched.outcome`, under its
occurrence id (`<series id>@<UTC instant>`); the document has one entry for the series.
Outcomes (and restores) for occurrence ids, and the poller's own `SeriesNote`s (missed
occurrences, which never reach the ledger, and `nextAt` refreshes), are mapped to the
series' entry and written with `series.series_fields`, computed against the entry as it
is in the document being written (inside the store's mutation, so a conflicting write
re-applies it to the fresher copy). Receipts of occurrences stay in the ledger only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from wasched.common.document import JsonObject, Patch
from wasched.common.events import Outcome, Receipt
from wasched.common.kinds import read_kinds
from wasched.common.messages import MessageInvalid, Status
from wasched.common.recurrence import Series, parse_occurrence_id
from wasched.common.series import OccurrenceOutcome, series_fields


@dataclass(frozen=True, slots=True)
class SeriesNote:
    """The poller's own record for a series: occurrences `missed` after downtime (listed, and
    counted beyond the list), or nothing but a refresh of `nextAt`."""

    id: str
    """The series' id."""
    outcomes: tuple[OccurrenceOutcome, ...] = ()
    more_missed: int = 0


@dataclass(slots=True)
class SeriesEvents:
    """What one batch brings for each series in the document."""

    outcomes: dict[str, list[OccurrenceOutcome]] = field(default_factory=dict)
    more_missed: dict[str, int] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)
    """Series id → the event ids that go to it (for the write's report)."""
    receipts: list[str] = field(default_factory=list)
    """Occurrence ids with receipts: kept in the ledger only, nothing to write."""


def series_target(event_id: str, index: Mapping[str, JsonObject]) -> tuple[str, datetime] | None:
    """(series id, instant) when `event_id` is an occurrence of a repeating message in the
    document. The series owns every id of that form, even one a one-time message has."""
    found = parse_occurrence_id(event_id)
    if found is None:
        return None
    raw = index.get(found[0])
    return found if raw is not None and raw.get("repeat") is not None else None


def occurrence_outcome(outcome: Outcome, at: datetime) -> OccurrenceOutcome:
    sent = outcome.status is Status.SENT
    return OccurrenceOutcome(
        at=at,
        status=outcome.status.value,
        sent_at=(outcome.sent_at or outcome.at) if sent else None,
        error=None if sent else outcome.error,
        error_kind=outcome.error_kind.value if outcome.error_kind and not sent else None,
    )


def collect(
    events: Iterable[Outcome | Receipt | SeriesNote], index: Mapping[str, JsonObject]
) -> tuple[SeriesEvents, list[Outcome | Receipt]]:
    """Split a batch: what goes to series entries, and the rest (one-time messages)."""
    found = SeriesEvents()
    rest: list[Outcome | Receipt] = []
    for event in events:
        if isinstance(event, SeriesNote):
            found.outcomes.setdefault(event.id, []).extend(event.outcomes)
            found.more_missed[event.id] = found.more_missed.get(event.id, 0) + event.more_missed
            found.ids.setdefault(event.id, []).append(event.id)
            continue
        target = series_target(event.id, index)
        if target is None:
            rest.append(event)
            continue
        series_id, at = target
        if isinstance(event, Receipt):
            found.receipts.append(event.id)
            continue
        found.ids.setdefault(series_id, []).append(event.id)
        found.outcomes.setdefault(series_id, []).append(occurrence_outcome(event, at))
    return found, rest


def series_patches(
    found: SeriesEvents, index: Mapping[str, JsonObject], zone: ZoneInfo
) -> tuple[list[Patch], list[str]]:
    """The patches for each series' entry, and the series that cannot take them (gone, or
    no longer a readable series: the next poll reports why)."""
    patches: list[Patch] = []
    unusable: list[str] = []
    for series_id, outcomes in found.outcomes.items():
        raw = index.get(series_id)
        series = series_of(raw, zone) if raw is not None else None
        if raw is None or series is None:
            unusable.append(series_id)
            continue
        more = found.more_missed.get(series_id, 0)
        fields = series_fields(raw, series, outcomes, more_missed=more)
        patches.append(Patch(series_id, fields))
    return patches, unusable


def series_of(raw: JsonObject, zone: ZoneInfo) -> Series | None:
    """The series of an entry as it is now (None: not a series, or not readable)."""
    if raw.get("repeat") is None:
        return None
    try:
        return read_kinds(raw, zone).series
    except MessageInvalid:
        return None
