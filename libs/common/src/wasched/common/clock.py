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


@functools.lru_cache(maxsize=65_536)
def _parse(text: str) -> datetime:
    """Cached: every poll re-reads the same times (datetimes are immutable)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeFormatError(f"not an ISO-8601 time: {text!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise TimeFormatError(
            f"time {text!r} has no time zone; write it in UTC with a trailing Z "
            "(e.g. 2025-12-24T10:00:00Z) or with an offset"
        )
    return parsed.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """The stored form: `2025-12-24T10:00:00.000Z`, like the existing writers."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_display(moment: datetime, zone: tzinfo) -> str:
    """Wall time for people: `24/12/2025, 10:00:05`."""
    return moment.astimezone(zone).strftime("%d/%m/%Y, %H:%M:%S")
