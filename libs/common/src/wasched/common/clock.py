"""Times are stored and compared in aware UTC; logs show the display zone."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo


class TimeFormatError(ValueError):
    """A time that cannot be read unambiguously."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_utc(value: object) -> datetime:
    """Parse ISO-8601 (`Z`, offsets, fractions) into aware UTC; a naive time is an error."""
    if not isinstance(value, str) or not value.strip():
        raise TimeFormatError(f"expected an ISO-8601 time string, got {value!r}")
    return _parse(value.strip())


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> datetime:
    """Cached (datetimes are immutable) for times read again and again, e.g. by fire checks;
    small, because the poller decides on a message again only when it changed or its time
    came (`poller.index`)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeFormatError(f"not an ISO-8601 time: {text!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise TimeFormatError(
            f"time {text!r} has no time zone; write it in UTC with a trailing Z "
            "(e.g. 2025-12-24T10:00:00Z) or with an offset"
        )
    return to_storable_utc(parsed)


def to_storable_utc(moment: datetime) -> datetime:
    """Aware UTC between years 1000 and 9999, the range the stored form can hold."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise TimeFormatError(f"time {moment.isoformat()!r} is out of range") from None
    if not 1000 <= utc.year <= 9999:
        raise TimeFormatError(f"time {moment.isoformat()!r} is out of range (years 1000–9999)")
    return utc


def format_utc(moment: datetime) -> str:
    """The stored form, exactly JavaScript's `toISOString()` as the existing writers use it:
    `2025-12-24T10:00:00.000Z` (UTC, milliseconds, sub-millisecond digits dropped)."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
        f"{m.microsecond // 1000:03d}Z"
    )


def format_display(moment: datetime, zone: tzinfo) -> str:
    """Wall time for people: `24/12/2025, 10:00:05` (UTC, marked, at the ends of time)."""
    try:
        return moment.astimezone(zone).strftime("%d/%m/%Y, %H:%M:%S")
    except OverflowError:
        return moment.astimezone(UTC).strftime("%d/%m/%Y, %H:%M:%S UTC")
