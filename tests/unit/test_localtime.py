"""Wall-clock time in a zone → the instant, across the clock changes of four hemispheres' zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wasched.common.localtime import (
    LocalTimeError,
    WallKind,
    load_zone,
    parse_time,
    resolve_wall,
    wall_kind,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "wall", "instant", "kind"),
    [
        # London: spring forward 2026-03-29 01:00 GMT → 02:00 BST; back 2026-10-25 02:00 → 01:00.
        ("Europe/London", "2026-03-29T00:59:59", "2026-03-29T00:59:59", WallKind.EXISTS),
        ("Europe/London", "2026-03-29T01:00:00", "2026-03-29T01:00:00", WallKind.GAP),
        ("Europe/London", "2026-03-29T01:30:00", "2026-03-29T01:00:00", WallKind.GAP),
        ("Europe/London", "2026-03-29T02:00:00", "2026-03-29T01:00:00", WallKind.EXISTS),
        ("Europe/London", "2026-10-25T01:30:00", "2026-10-25T00:30:00", WallKind.FOLD),
        ("Europe/London", "2026-10-25T02:00:00", "2026-10-25T02:00:00", WallKind.EXISTS),
        ("Europe/London", "2026-12-24T09:00:00", "2026-12-24T09:00:00", WallKind.EXISTS),
        ("Europe/London", "2026-07-01T09:00:00", "2026-07-01T08:00:00", WallKind.EXISTS),
        # New York: 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
        ("America/New_York", "2026-03-08T02:30:00", "2026-03-08T07:00:00", WallKind.GAP),
        ("America/New_York", "2026-11-01T01:30:00", "2026-11-01T05:30:00", WallKind.FOLD),
        ("America/New_York", "2026-11-01T02:30:00", "2026-11-01T07:30:00", WallKind.EXISTS),
        # Sydney (southern hemisphere): 2026-10-04 02:00 AEST → 03:00 AEDT; 2026-04-05 03:00 → 02:00.
        ("Australia/Sydney", "2026-10-04T02:30:00", "2026-10-03T16:00:00", WallKind.GAP),
        ("Australia/Sydney", "2026-04-05T02:30:00", "2026-04-04T15:30:00", WallKind.FOLD),
        ("Australia/Sydney", "2026-06-01T09:00:00", "2026-05-31T23:00:00", WallKind.EXISTS),
        # Lord Howe moves by 30 minutes: 2026-10-04 02:00 → 02:30; 2026-04-05 02:00 → 01:30.
        ("Australia/Lord_Howe", "2026-10-04T02:15:00", "2026-10-03T15:30:00", WallKind.GAP),
        ("Australia/Lord_Howe", "2026-10-04T02:30:00", "2026-10-03T15:30:00", WallKind.EXISTS),
        ("Australia/Lord_Howe", "2026-04-05T01:45:00", "2026-04-04T14:45:00", WallKind.FOLD),
        ("Australia/Lord_Howe", "2026-04-05T02:00:00", "2026-04-04T15:30:00", WallKind.EXISTS),
        # Samoa skipped all of 2011-12-30: every wall time that day is the jump at midnight.
        ("Pacific/Apia", "2011-12-30T12:00:00", "2011-12-30T10:00:00", WallKind.GAP),
    ],
)
def test_wall_times_resolve_by_the_rule(zone: str, wall: str, instant: str, kind: WallKind) -> None:
    tz = load_zone(zone)
    naive = datetime.fromisoformat(wall)
    assert wall_kind(naive, tz) is kind
    assert resolve_wall(naive, tz) == utc(instant)
    assert parse_time(wall, tz) == utc(instant)


@pytest.mark.parametrize(
    "text",
    ["2026-03-29T01:30:00Z", "2026-03-29T01:30:00+00:00", "2026-03-29T02:30:00+01:00"],
)
def test_a_time_with_an_offset_is_the_instant_as_written(text: str) -> None:
    """The zone plays no part: 01:30Z is 01:30Z even though London skips 01:30 that day."""
    assert parse_time(text, load_zone("Europe/London")) == utc("2026-03-29T01:30:00")
    assert parse_time(text, None) == utc("2026-03-29T01:30:00")


ZONES = ["Europe/London", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]


@given(
    zone=st.sampled_from(ZONES),
    wall=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31)),
)
def test_every_wall_time_resolves_to_the_first_instant_that_reaches_it(
    zone: str, wall: datetime
) -> None:
    """Existing times come back unchanged; skipped ones land on the jump (the instant one
    second before still reads earlier than the wall time); repeated ones on the first."""
    tz = load_zone(zone)
    instant = resolve_wall(wall, tz)
    seen = instant.astimezone(tz).replace(tzinfo=None)
    kind = wall_kind(wall, tz)
    if kind is WallKind.GAP:
        just_before = (instant - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None)
        assert just_before < wall < seen
    else:
        assert seen == wall
    if kind is WallKind.FOLD:
        later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        assert instant < later


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Europe/Londn", "unknown time zone 'Europe/Londn' (expected e.g. Europe/London)"),
        ("europe/london", "unknown time zone 'europe/london'; did you mean 'Europe/London'?"),
        ("../etc/passwd", "unknown time zone '../etc/passwd'"),
        ("", "expected an IANA time zone name such as Europe/London, got ''"),
        (3600, "expected an IANA time zone name such as Europe/London, got 3600"),
    ],
)
def test_unknown_zones_are_named(name: object, message: str) -> None:
    with pytest.raises(LocalTimeError) as err:
        load_zone(name)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("value", "zone", "message"),
    [
        (
            "2026-12-24T09:00:00",
            None,
            "scheduledTime: '2026-12-24T09:00:00' has no time zone; add a timezone field "
            '(e.g. "timezone": "Europe/London") to read it as wall-clock time there, '
            "or write it in UTC with a trailing Z (e.g. 2026-12-24T09:00:00Z)",
        ),
        ("2026-12-24", "Europe/London", "has no time of day (e.g. 2026-12-24T09:00:00)"),
        ("24/12/2026 09:00", "Europe/London", "not an ISO-8601 time: '24/12/2026 09:00'"),
        (None, "Europe/London", "expected an ISO-8601 time string, got None"),
        ("9999-12-31T23:30:00", "America/New_York", "out of range"),
        ("1000-01-01T00:30:00", "Europe/Berlin", "out of range"),
        ("0999-12-31T23:00:00Z", "Europe/London", "out of range"),
    ],
)
def test_unusable_times_say_how_to_write_them(
    value: object, zone: str | None, message: str
) -> None:
    with pytest.raises(LocalTimeError) as err:
        parse_time(value, load_zone(zone) if zone else None)
    assert message in str(err.value)


@pytest.mark.parametrize("text", ["2026-W52-4T09:00", "2026-12-24 09:00", "20261224T090000"])
def test_other_iso_forms_with_a_time_of_day(text: str) -> None:
    assert parse_time(text, load_zone("Europe/London")) == utc("2026-12-24T09:00:00")


def test_the_range_edges_that_fit_are_accepted() -> None:
    london = load_zone("Europe/London")
    assert parse_time("9999-12-31T23:59:59", london) == utc("9999-12-31T23:59:59")
    assert parse_time("1000-01-01T00:00:00", london).year == 1000  # LMT: 00:01:15 UTC
