"""A repeating message: its occurrences as instants, the skipped ones, and their ledger ids.

The rule runs in wall-clock time of the series' zone from the wall time of the first
occurrence (`scheduledTime`), so "09:00 every Monday" stays 09:00 across clock
changes. Each wall-clock occurrence becomes an instant by `localtime`'s rule (a time
the clocks skip → the moment they jump; a time that happens twice → the first). Two
occurrences that land on the same instant (both inside one skipped hour) are one.

The first occurrence is always `scheduledTime`, even when the rule would not produce
it (`FREQ=WEEKLY;BYDAY=TU` starting on a Monday: that Monday, then Tuesdays). `COUNT`
counts it; occurrences left out by `skip` still count (as RFC 5545's EXDATE).
A date that does not exist is not an occurrence (RFC 5545): `FREQ=YEARLY` from a
29 February fires in leap years only; `FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1` is the
last day of February every year.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule

from wasched.common.clock import TimeFormatError
from wasched.common.localtime import (
    LocalTimeError,
    parse_time,
    resolve_wall,
    wall_time,
)
from wasched.common.rrules import Rule, RuleError, check_occurs, parse_rule

MAX_SKIP = 1000
OCCURRENCE_SEPARATOR = "@"
_STAMP = re.compile(r"(\d{8}T\d{6})(?:\.(\d{3}|\d{6}))?Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RecurrenceError(ValueError):
    """A `repeat` or `skip` that cannot be used; the text starts with the field name."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Occurrences left out: exact instants, or every occurrence on a local date."""

    instants: frozenset[datetime] = frozenset()
    dates: frozenset[date] = frozenset()

    def leaves_out(self, wall: datetime, instant: datetime) -> bool:
        return instant in self.instants or wall.date() in self.dates


@dataclass(frozen=True, slots=True)
class Series:
    rule: Rule
    zone: ZoneInfo
    first: datetime
    """The first occurrence (aware UTC): `scheduledTime`."""
    wall_first: datetime
    """Its naive wall time in `zone`, from which the rule runs."""
    skip: Skip
    dateutil_rule: rrule


def read_series(repeat: object, start: datetime, zone: ZoneInfo, skip: object = None) -> Series:
    """The series of a message. `start` is `scheduledTime`: an aware instant, or a naive
    wall time in `zone`. Raises `RecurrenceError`."""
    try:
        rule = parse_rule(repeat)
    except RuleError as exc:
        raise RecurrenceError(f"repeat: {exc}") from None
    if start.tzinfo is None:
        wall_first = start
        try:
            first = resolve_wall(start, zone)
        except TimeFormatError as exc:
            raise RecurrenceError(f"scheduledTime: {exc}") from None
    else:
        first, wall_first = start.astimezone(UTC), wall_time(start, zone)
    _check_until(rule, first, wall_first)
    try:
        check_occurs(rule, wall_first)
    except RuleError as exc:
        raise RecurrenceError(f"repeat: {exc}") from None
    return Series(
        rule=rule,
        zone=zone,
        first=first,
        wall_first=wall_first,
        skip=read_skip(skip, zone),
        dateutil_rule=rule.build(wall_first.replace(microsecond=0), cache=True),
    )


def _check_until(rule: Rule, first: datetime, wall_first: datetime) -> None:
    until = rule.until
    if until is None:
        return
    if (until.instant is not None and until.instant < first) or (
        until.wall is not None and until.wall < wall_first
    ):
        raise RecurrenceError("repeat: UNTIL: it is before the first occurrence (scheduledTime)")


def read_skip(value: object, zone: ZoneInfo) -> Skip:
    """`skip`: a list of local dates (`2026-12-28`: every occurrence that day) and times
    (`2026-12-28T09:00:00Z`, or a wall time in the series' zone: that occurrence)."""
    if value is None:
        return Skip()
    if not isinstance(value, list):
        raise RecurrenceError(
            'skip: expected a list such as ["2026-12-28", "2027-01-04T09:00:00"], '
            f"got {type(value).__name__}"
        )
    if len(value) > MAX_SKIP:
        raise RecurrenceError(f"skip: {len(value)} entries; at most {MAX_SKIP}")
    instants: set[datetime] = set()
    dates: set[date] = set()
    for index, entry in enumerate(value):
        where = f"skip[{index}]"
        if isinstance(entry, str) and _DATE.fullmatch(entry.strip()):
            try:
                dates.add(date.fromisoformat(entry.strip()))
            except ValueError as exc:
                raise RecurrenceError(f"{where}: {entry!r} is not a date: {exc}") from None
            continue
        try:
            instants.add(parse_time(entry, zone, field=where))
        except LocalTimeError as exc:
            raise RecurrenceError(str(exc)) from None
    return Skip(frozenset(instants), frozenset(dates))


def occurrences(series: Series, after: datetime | None = None) -> Iterator[datetime]:
    """The occurrence instants (aware UTC, ascending, skips left out), all of them or only
    those strictly after `after`. Ends with COUNT, UNTIL or year 9999."""
    until = series.rule.until
    count = series.rule.count
    previous: datetime | None = None
    early = _long_before(after, series.zone)
    for index, wall in _walls(series, after):
        if (count is not None and index >= count) or (
            until is not None and until.wall is not None and wall > until.wall
        ):
            return
        if early is not None and index > 0 and wall < early:
            continue  # resolves to an instant long before `after`: not yielded either way
        try:
            instant = series.first if index == 0 else resolve_wall(wall, series.zone)
        except TimeFormatError:
            return
        if until is not None and until.instant is not None and instant > until.instant:
            return
        if previous is not None and instant <= previous:
            continue  # two wall times in one skipped hour: one occurrence
        previous = instant
        if (after is None or instant > after) and not series.skip.leaves_out(wall, instant):
            yield instant


_MARGIN = timedelta(days=2)
"""More than any zone's offset change: a wall time this far before `after`'s own wall time
resolves to an instant before `after`."""


def _long_before(after: datetime | None, zone: ZoneInfo) -> datetime | None:
    """The wall time before which occurrences need not be resolved (a rule without a fixed
    step runs from its first occurrence on every call; resolving each one costs most)."""
    if after is None:
        return None
    try:
        return wall_time(after, zone) - _MARGIN
    except OverflowError:
        return None


def next_occurrence(series: Series, after: datetime | None = None) -> datetime | None:
    return next(occurrences(series, after), None)


def _walls(series: Series, after: datetime | None) -> Iterator[tuple[int, datetime]]:
    """(index, naive wall time) of each occurrence the rule produces, the first included.

    A fixed-step rule starts at the last step at or before the wall time of `after`
    instead of at the first occurrence, so a series every 5 s costs the same after a year
    as after a minute. Nothing after `after` is lost: wall times resolve monotonically
    (a skipped time → the jump, a repeated one → its first instant) and the first instant
    of `after`'s own wall time is not later than `after`, so an earlier wall time never
    resolves to an instant after it."""
    step = series.rule.step
    if step is not None and after is not None:
        skipped = (wall_time(after, series.zone) - series.wall_first) // step
        if skipped > 0:
            try:
                start = series.wall_first + skipped * step
            except OverflowError:
                return
            for offset, wall in enumerate(series.rule.build(start)):
                yield skipped + offset, wall
            return
    yield 0, series.wall_first
    index, base = 1, series.wall_first.replace(microsecond=0)  # dateutil drops microseconds
    for wall in series.dateutil_rule:
        if wall != base:  # the rule yields the first itself when it matches
            yield index, wall
            index += 1


def occurrence_id(series_id: str, at: datetime) -> str:
    """The ledger id of one occurrence: `<series id>@<UTC instant>`, e.g.
    `bday-anna@20261224T090000Z` (`.123Z` / `.123456Z` only when the instant has them)."""
    utc = at.astimezone(UTC)
    stamp = utc.strftime("%Y%m%dT%H%M%S")
    if utc.microsecond:
        micro = utc.microsecond
        stamp += f".{micro // 1000:03d}" if micro % 1000 == 0 else f".{micro:06d}"
    return f"{series_id}{OCCURRENCE_SEPARATOR}{stamp}Z"


def parse_occurrence_id(text: str) -> tuple[str, datetime] | None:
    """(series id, occurrence instant) of an occurrence id, or None for any other id.

    The stamp is fixed in form and never holds `@`, so the last `@` splits it off even
    when the series id itself contains one."""
    series_id, sep, stamp = text.rpartition(OCCURRENCE_SEPARATOR)
    match = _STAMP.fullmatch(stamp)
    if not sep or not series_id or not match:
        return None
    moment = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    if match[2]:
        moment = moment.replace(microsecond=int(match[2].ljust(6, "0")))
    return series_id, moment


def is_occurrence_id(text: str) -> bool:
    """True for ids of the occurrence form; a one-time message must not use one."""
    return parse_occurrence_id(text) is not None
