"""Wall-clock times in an IANA zone → instants, with one rule for the clock changes.

A message may say "09:00 in Europe/London" instead of an instant. Twice a year that
wall time is not a single instant:

- **It does not exist** (spring forward: 01:30 on the day London jumps from 01:00 to
  02:00): it is read as the first valid instant after it — the moment the clocks
  jump (01:00 UTC, shown as 02:00 BST). Every wall time inside the gap maps there.
- **It happens twice** (autumn: 01:30 on the day London goes back from 02:00 to
  01:00): it is read as the first of the two (01:30 BST = 00:30 UTC).

This differs from RFC 5545 (which shifts a skipped time by the length of the gap,
02:30 → 03:30) on purpose: "send at 02:30" should never be sent *later* than the
first moment the day reaches that time. A time written with `Z` or an offset is an
instant as it stands; the zone plays no part in it.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from wasched.common.clock import TimeFormatError, to_storable_utc

_TIME_OF_DAY = re.compile(r"[T ]\d")


class LocalTimeError(ValueError):
    """A zone or wall time that cannot be used; the text says why and how to write it."""


class WallKind(StrEnum):
    EXISTS = "exists"
    GAP = "gap"  # skipped by the clocks: resolved to the moment they jump
    FOLD = "fold"  # happens twice: resolved to the first


def load_zone(name: object) -> ZoneInfo:
    """The IANA zone `name`, or `LocalTimeError` (with the right spelling when only the
    case is wrong)."""
    if not isinstance(name, str) or not name.strip():
        raise LocalTimeError(f"expected an IANA time zone name such as Europe/London, got {name!r}")
    try:
        return _zone(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    hint = _same_but_case(name.strip())
    suggestion = f"; did you mean {hint!r}?" if hint else " (expected e.g. Europe/London)"
    raise LocalTimeError(f"unknown time zone {name!r}{suggestion}")


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _same_but_case(name: str) -> str | None:
    lowered = name.lower()
    return next((z for z in sorted(available_timezones()) if z.lower() == lowered), None)


def wall_kind(wall: datetime, zone: ZoneInfo) -> WallKind:
    """Whether a naive wall time exists once, never, or twice in `zone`."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return WallKind.EXISTS
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return WallKind.FOLD if back == wall else WallKind.GAP


def resolve_wall(wall: datetime, zone: ZoneInfo) -> datetime:
    """The aware UTC instant of a naive wall time in `zone` (see the module rule).

    Raises `TimeFormatError` when the instant is outside years 1000–9999.
    """
    if wall.tzinfo is not None:
        raise ValueError("resolve_wall takes a naive wall time")
    try:
        first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if first.astimezone(zone).replace(tzinfo=None) == wall:
            return to_storable_utc(first)  # exists, or the first of two (fold=0)
        return to_storable_utc(_jump(wall, zone))
    except OverflowError:
        raise TimeFormatError(f"time {wall.isoformat()!r} in {zone} is out of range") from None


def _jump(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant the clocks jump over `wall`: between the wall time read with the offset
    after the change (before the jump) and with the offset before it (after the jump)."""
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    target = after.astimezone(zone).utcoffset()
    lo, hi = int(before.timestamp()), int(after.timestamp())
    while hi - lo > 1:  # offsets change on whole seconds; a 24 h gap takes 17 steps
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def parse_time(value: object, zone: ZoneInfo | None, *, field: str = "scheduledTime") -> datetime:
    """Aware UTC for a stored time: an instant (`Z`/offset) as given, or a wall time in
    `zone`. Raises `LocalTimeError` naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise LocalTimeError(f"{field}: expected an ISO-8601 time string, got {value!r}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise LocalTimeError(
            f"{field}: not an ISO-8601 time: {text!r} (e.g. 2026-12-24T09:00:00)"
        ) from None
    if parsed.tzinfo is not None and parsed.utcoffset() is not None:
        try:
            return to_storable_utc(parsed)
        except TimeFormatError as exc:
            raise LocalTimeError(f"{field}: {exc}") from None
    if not _TIME_OF_DAY.search(text):
        raise LocalTimeError(f"{field}: {text!r} has no time of day (e.g. {text[:10]}T09:00:00)")
    if zone is None:
        raise LocalTimeError(
            f"{field}: {text!r} has no time zone; add a timezone field "
            f'(e.g. "timezone": "Europe/London") to read it as wall-clock time there, '
            f"or write it in UTC with a trailing Z (e.g. {text[:19]}Z)"
        )
    try:
        return resolve_wall(parsed.replace(tzinfo=None), zone)
    except TimeFormatError as exc:
        raise LocalTimeError(f"{field}: {exc} (years 1000–9999)") from None


def wall_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall time of an aware instant in `zone`."""
    return moment.astimezone(zone).replace(tzinfo=None)
