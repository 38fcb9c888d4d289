"""Reading the time a person types: ISO-8601 with a zone, local wall time, or `+5m`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from wasched.common.clock import format_display

_RELATIVE = re.compile(r"\+\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class WhenError(ValueError):
    """The time cannot be used; the text says why in one line."""


def parse_when(text: str, zone: tzinfo, now: datetime) -> datetime:
    """Aware UTC for `2025-12-24T10:00:00Z`, `2025-12-24 10:00` (in `zone`) or `+90s`."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount = float(relative["amount"])
        return now.astimezone(UTC) + timedelta(**{_UNITS[relative["unit"]]: amount})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WhenError(
            f"cannot read the time {text!r}: write 2025-12-24T10:00 (in --tz), "
            "2025-12-24T10:00:00Z (UTC), or +5m"
        ) from None
    if parsed.tzinfo is not None and parsed.utcoffset() is not None:
        return parsed.astimezone(UTC)
    return _local_to_utc(parsed, zone)


def _local_to_utc(naive: datetime, zone: tzinfo) -> datetime:
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        raise WhenError(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks skip it); "
            "choose another time"
        )
    if first.utcoffset() != second.utcoffset():
        raise WhenError(
            f"{naive:%Y-%m-%d %H:%M} happens twice in {zone} (the clocks go back); "
            "add an offset, e.g. +01:00"
        )
    return first.astimezone(UTC)


def require_future(moment: datetime, now: datetime, zone: tzinfo) -> datetime:
    if moment <= now:
        raise WhenError(
            f"{format_display(moment, zone)} ({zone}) is in the past; "
            f"it is now {format_display(now, zone)}"
        )
    return moment
