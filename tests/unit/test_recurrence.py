"""Repeating messages: occurrences in wall-clock time, across clock changes, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wasched.common.localtime import load_zone
from wasched.common.recurrence import (
    RecurrenceError,
    Series,
    is_occurrence_id,
    next_occurrence,
    occurrence_id,
    occurrences,
    parse_occurrence_id,
    read_series,
)
from wasched.common.topology import ledger_key


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def series(rule: str, start: str, zone: str = "Europe/London", skip: object = None) -> Series:
    """`start` as stored: naive = wall time in `zone`, with Z/offset = an instant."""
    parsed = datetime.fromisoformat(start)
    return read_series(rule, parsed, load_zone(zone), skip)


def first(s: Series, n: int, after: datetime | None = None) -> list[str]:
    return [o.strftime("%Y-%m-%dT%H:%M:%SZ") for o in islice(occurrences(s, after), n)]


def local(s: Series, n: int) -> list[str]:
    return [o.astimezone(s.zone).strftime("%a %d %b %H:%M %Z") for o in islice(occurrences(s), n)]


def test_weekly_in_london_stays_at_nine_across_both_changes() -> None:
    s = series("FREQ=WEEKLY;BYDAY=MO", "2026-03-16T09:00:00")
    assert first(s, 3) == ["2026-03-16T09:00:00Z", "2026-03-23T09:00:00Z", "2026-03-30T08:00:00Z"]
    autumn = series("FREQ=WEEKLY;BYDAY=MO", "2026-10-19T09:00:00")
    assert local(autumn, 2) == ["Mon 19 Oct 09:00 BST", "Mon 26 Oct 09:00 GMT"]
    assert first(autumn, 2) == ["2026-10-19T08:00:00Z", "2026-10-26T09:00:00Z"]


def test_weekly_in_new_york_across_both_changes() -> None:
    s = series("FREQ=WEEKLY", "2026-03-01T08:30:00", "America/New_York")
    assert first(s, 2) == ["2026-03-01T13:30:00Z", "2026-03-08T12:30:00Z"]
    autumn = series("FREQ=WEEKLY", "2026-10-25T08:30:00", "America/New_York")
    assert first(autumn, 2) == ["2026-10-25T12:30:00Z", "2026-11-01T13:30:00Z"]


def test_weekly_in_sydney_the_southern_hemisphere_changes_the_other_way() -> None:
    s = series("FREQ=WEEKLY;BYDAY=SU", "2026-03-29T09:00:00", "Australia/Sydney")
    assert local(s, 2) == ["Sun 29 Mar 09:00 AEDT", "Sun 05 Apr 09:00 AEST"]
    assert first(s, 2) == ["2026-03-28T22:00:00Z", "2026-04-04T23:00:00Z"]
    spring = series("FREQ=WEEKLY;BYDAY=SU", "2026-09-27T09:00:00", "Australia/Sydney")
    assert first(spring, 2) == ["2026-09-26T23:00:00Z", "2026-10-03T22:00:00Z"]


def test_a_weekly_time_the_clocks_skip_fires_when_they_jump_that_week_only() -> None:
    """01:30 every Sunday: on 29 March London goes 01:00 → 02:00, so that one goes out at
    the jump (01:00 UTC = 02:00 BST); the next Sunday is 01:30 BST again."""
    s = series("FREQ=WEEKLY", "2026-03-22T01:30:00")
    assert local(s, 3) == ["Sun 22 Mar 01:30 GMT", "Sun 29 Mar 02:00 BST", "Sun 05 Apr 01:30 BST"]


def test_a_daily_time_that_happens_twice_fires_once_at_the_first() -> None:
    s = series("FREQ=DAILY", "2026-04-04T01:45:00", "Australia/Lord_Howe")
    assert first(s, 3) == ["2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]
    assert local(s, 3)[1] == "Sun 05 Apr 01:45 +11"  # the first of the two 01:45s


def test_lord_howe_half_hour_gap() -> None:
    s = series("FREQ=DAILY", "2026-10-03T02:15:00", "Australia/Lord_Howe")
    assert local(s, 3) == ["Sat 03 Oct 02:15 +1030", "Sun 04 Oct 02:30 +11", "Mon 05 Oct 02:15 +11"]


def test_wall_times_inside_one_skipped_hour_are_one_occurrence() -> None:
    s = series("FREQ=MINUTELY;INTERVAL=20", "2026-03-29T00:40:00")
    assert first(s, 3) == ["2026-03-29T00:40:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z"]


def test_hourly_runs_on_the_wall_clock_so_the_repeated_hour_is_not_sent_twice() -> None:
    s = series("FREQ=HOURLY", "2026-10-25T00:00:00")
    assert first(s, 3) == ["2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"]


def test_february_29_yearly_fires_in_leap_years_only() -> None:
    """RFC 5545: a date that does not exist is not an occurrence (and is not counted)."""
    s = series("FREQ=YEARLY;COUNT=3", "2028-02-29T09:00:00")
    assert first(s, 5) == ["2028-02-29T09:00:00Z", "2032-02-29T09:00:00Z", "2036-02-29T09:00:00Z"]


def test_last_day_of_february_every_year() -> None:
    s = series("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", "2027-02-28T09:00:00")
    assert first(s, 3) == ["2027-02-28T09:00:00Z", "2028-02-29T09:00:00Z", "2029-02-28T09:00:00Z"]


def test_last_day_of_every_month() -> None:
    s = series("FREQ=MONTHLY;BYMONTHDAY=-1", "2026-01-31T18:00:00")
    days = [o[:10] for o in first(s, 5)]
    assert days == ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]


def test_monthly_on_the_31st_skips_shorter_months() -> None:
    s = series("FREQ=MONTHLY", "2026-01-31T09:00:00")
    assert [o[:10] for o in first(s, 3)] == ["2026-01-31", "2026-03-31", "2026-05-31"]


def test_the_first_occurrence_is_scheduled_time_even_off_the_rule_and_counts() -> None:
    s = series("FREQ=WEEKLY;BYDAY=TU;COUNT=3", "2026-01-05T09:00:00")  # a Monday
    assert local(s, 5) == ["Mon 05 Jan 09:00 GMT", "Tue 06 Jan 09:00 GMT", "Tue 13 Jan 09:00 GMT"]


@pytest.mark.parametrize(
    ("until", "last"),
    [
        ("UNTIL=20260108T090000Z", "2026-01-08T09:00:00Z"),  # an instant, inclusive
        ("UNTIL=20260108T085959Z", "2026-01-07T09:00:00Z"),
        ("UNTIL=20260108", "2026-01-08T09:00:00Z"),  # a local date: all of that day
        ("UNTIL=20260108T090000", "2026-01-08T09:00:00Z"),  # a wall time in the zone
    ],
)
def test_until_is_inclusive(until: str, last: str) -> None:
    s = series(f"FREQ=DAILY;{until}", "2026-01-05T09:00:00")
    assert first(s, 10)[-1] == last


def test_until_as_a_wall_time_in_summer_counts_in_the_zone() -> None:
    s = series("FREQ=DAILY;UNTIL=20260702T090000", "2026-07-01T09:00:00")
    assert first(s, 5) == ["2026-07-01T08:00:00Z", "2026-07-02T08:00:00Z"]


def test_skip_by_local_date_or_by_occurrence() -> None:
    skip = ["2026-01-06", "2026-01-08T09:00:00Z", "2026-01-09T09:00:00"]
    s = series("FREQ=DAILY;COUNT=6", "2026-01-05T09:00:00", skip=skip)
    assert [o[:10] for o in first(s, 10)] == ["2026-01-05", "2026-01-07", "2026-01-10"]


def test_skip_by_date_is_the_local_date() -> None:
    """23:30 in Sydney on the 7th is the 7th there, though it is the 7th 12:30 UTC."""
    s = series("FREQ=DAILY", "2026-01-06T23:30:00", "Australia/Sydney", skip=["2026-01-07"])
    assert [o.astimezone(s.zone).day for o in islice(occurrences(s), 2)] == [6, 8]


def test_only_occurrences_after_the_given_instant() -> None:
    s = series("FREQ=WEEKLY;BYDAY=MO", "2026-01-05T09:00:00")
    assert first(s, 2, after=utc("2026-01-12T09:00:00")) == [
        "2026-01-19T09:00:00Z",
        "2026-01-26T09:00:00Z",
    ]
    assert next_occurrence(s, utc("2026-01-12T08:59:59")) == utc("2026-01-12T09:00:00")


def test_a_series_ends_with_count_and_at_year_9999() -> None:
    assert next_occurrence(series("FREQ=DAILY;COUNT=2", "2026-01-05T09:00:00Z"),
                           utc("2026-01-06T09:00:00")) is None  # fmt: skip
    assert first(series("FREQ=YEARLY", "9998-06-01T09:00:00Z"), 5) == [
        "9998-06-01T09:00:00Z",
        "9999-06-01T09:00:00Z",
    ]


def test_an_instant_start_keeps_its_instant_and_repeats_its_wall_time() -> None:
    """01:30 GMT on the autumn day is the second 01:30; it stays the first occurrence."""
    s = series("FREQ=DAILY", "2026-10-25T01:30:00+00:00")
    assert first(s, 2) == ["2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"]


def test_a_start_in_the_gap_goes_out_at_the_jump_and_then_repeats_as_written() -> None:
    s = series("FREQ=DAILY", "2026-03-29T01:30:00")
    assert first(s, 2) == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]


STEP_RULES = [
    ("FREQ=SECONDLY;INTERVAL=5", "2026-03-29T00:50:03"),
    ("FREQ=MINUTELY;INTERVAL=7", "2026-10-24T23:58:00"),
    ("FREQ=MINUTELY;INTERVAL=45;COUNT=4000", "2026-03-27T10:10:00"),
    ("FREQ=HOURLY;INTERVAL=7", "2026-10-20T01:30:00"),
    ("FREQ=DAILY;INTERVAL=3;UNTIL=20261231", "2026-03-01T01:30:00"),
    ("FREQ=WEEKLY;INTERVAL=2", "2025-10-26T01:30:00"),
]


@settings(max_examples=100, deadline=None)
@given(
    case=st.sampled_from(STEP_RULES),
    zone=st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe"]),
    steps=st.integers(min_value=-2, max_value=5000),
    extra=st.floats(min_value=0, max_value=1),
)
def test_skipping_ahead_gives_the_same_occurrences_as_counting_from_the_start(
    case: tuple[str, str], zone: str, steps: int, extra: float
) -> None:
    """A fixed-step rule starts near `after` instead of iterating from the first occurrence;
    it must agree with the plain iteration, COUNT and clock changes included."""
    rule, start = case
    s = series(rule, start, zone)
    assert s.rule.step is not None
    after = s.first + s.rule.step * (steps + extra)
    fast = list(islice(occurrences(s, after), 5))
    plain = list(islice((o for o in occurrences(s) if o > after), 5))
    assert fast == plain


RULES = [
    ("FREQ=DAILY;BYHOUR=1,13;BYMINUTE=30", "2026-03-20T01:30:00"),
    ("FREQ=WEEKLY;BYDAY=SU;COUNT=40", "2026-03-01T01:30:00"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", "2026-01-31T02:30:00"),
    ("FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU", "2025-03-30T01:30:00"),
]


@settings(max_examples=100, deadline=None)
@given(
    case=st.sampled_from(RULES),
    zone=st.sampled_from(["Europe/London", "America/New_York", "Australia/Lord_Howe"]),
    hours=st.floats(min_value=-48, max_value=24 * 800),
)
def test_occurrences_after_an_instant_agree_with_counting_from_the_start(
    case: tuple[str, str], zone: str, hours: float
) -> None:
    """Occurrences long before `after` are not resolved (only counted); what comes after
    must be the same, clock changes, COUNT and the first occurrence included."""
    rule, start = case
    s = series(rule, start, zone)
    after = s.first + timedelta(hours=hours)
    fast = list(islice(occurrences(s, after), 5))
    plain = list(islice((o for o in occurrences(s) if o > after), 5))
    assert fast == plain


def test_a_fast_series_a_year_on_still_finds_its_next_occurrence() -> None:
    s = series("FREQ=SECONDLY;INTERVAL=5", "2026-01-01T00:00:00Z")
    assert next_occurrence(s, utc("2027-01-01T00:00:02")) == utc("2027-01-01T00:00:05")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "repeat: expected an RRULE such as FREQ=WEEKLY;BYDAY=MO, got ''"),
        ("BYDAY=MO", "repeat: FREQ is required, e.g. FREQ=WEEKLY or FREQ=YEARLY"),
        ("FREQ=FORTNIGHTLY", "repeat: FREQ: 'FORTNIGHTLY' is not one of YEARLY, MONTHLY"),
        ("FREQ=WEEKLY;BYDAY=XX", "repeat: BYDAY: expected weekdays like MO,WE or 1MO, -1FR"),
        ("FREQ=WEEKLY;BYDAY=1MO", "repeat: BYDAY: '1MO': a numbered weekday needs FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYDAY=6MO", "repeat: BYDAY: '6MO': the number must be 1 to 5"),
        ("FREQ=MONTHLY;BYMONTHDAY=40", "repeat: BYMONTHDAY: 40 is out of range (1 to 31 or"),
        ("FREQ=YEARLY;BYMONTH=13", "repeat: BYMONTH: 13 is out of range (1 to 12)"),
        ("FREQ=DAILY;BYHOUR=9am", "repeat: BYHOUR: expected whole numbers, got '9AM'"),
        ("FREQ=WEEKLY;INTERVAL=0", "repeat: INTERVAL: expected a whole number of at least 1"),
        ("FREQ=WEEKLY;COUNT=-1", "repeat: COUNT: expected a whole number of at least 1"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101", "repeat: COUNT: COUNT and UNTIL cannot be used"),
        ("FREQ=DAILY;UNTIL=2027-01-01", "repeat: UNTIL: expected 20271231, 20271231T090000"),
        ("FREQ=DAILY;UNTIL=20270230", "repeat: UNTIL: '20270230' is not a valid date"),
        ("FREQ=DAILY;UNTIL=20250101", "repeat: UNTIL: it is before the first occurrence"),
        ("FREQ=WEEKLY;FREQ=DAILY", "repeat: FREQ: given twice"),
        ("FREQ=WEEKLY;BYEASTER=0", "repeat: BYEASTER: not supported (supported: FREQ,"),
        ("FREQ=WEEKLY;X-NAME=1", "repeat: X-NAME: not supported"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "repeat: BYMONTHDAY: not with FREQ=WEEKLY"),
        ("FREQ=MONTHLY;BYWEEKNO=1", "repeat: BYWEEKNO: only with FREQ=YEARLY"),
        ("FREQ=DAILY;BYSETPOS=1;BYHOUR=9", "repeat: BYSETPOS: supported with FREQ=MONTHLY"),
        ("FREQ=WEEKLY;BYDAY", "repeat: expected NAME=VALUE, got 'BYDAY'"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "repeat: BYMONTHDAY: 30 never falls in BYMONTH=2"),
        ("FREQ=HOURLY;BYYEARDAY=366;BYMONTH=1", "repeat: the rule matches no day after the first"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=9", "repeat: the rule has no occurrence after the first"),
        ("DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY", "repeat: DTSTART: not allowed inside"),
        ("FREQ=DAILY;DTSTART=20260101", "repeat: DTSTART: not allowed inside repeat"),
        ("RRULE:FREQ=DAILY\nEXDATE:20260106T090000Z", "repeat: EXDATE: not supported: to leave"),
        ("0 9 * * 1", "repeat: this looks like a cron expression; repeat takes an RFC 5545"),
        ("FREQ=DAILY;" + "BYHOUR=9;" * 60, "repeat: the rule is 551 characters; at most 500"),
        (42, "repeat: expected an RRULE such as FREQ=WEEKLY;BYDAY=MO, got 42"),
    ],
)
def test_bad_rules_name_the_part_at_fault(rule: object, message: str) -> None:
    with pytest.raises(RecurrenceError) as err:
        read_series(rule, datetime(2026, 1, 5, 9), load_zone("Europe/London"))
    assert message in str(err.value)


@pytest.mark.parametrize(
    "rule",
    ["RRULE:FREQ=WEEKLY;BYDAY=MO", "freq=weekly;byday=mo", " FREQ=WEEKLY ; BYDAY=MO ;"],
)
def test_rules_are_read_as_rfc_5545_allows(rule: str) -> None:
    s = read_series(rule, datetime(2026, 1, 5, 9), load_zone("Europe/London"))
    assert s.rule.text == "FREQ=WEEKLY;BYDAY=MO"


@pytest.mark.parametrize(
    ("skip", "message"),
    [
        ("2026-01-06", "skip: expected a list such as"),
        (["2026-02-30"], "skip[0]: '2026-02-30' is not a date"),
        (["2026-01-06", "next tuesday"], "skip[1]: not an ISO-8601 time: 'next tuesday'"),
        ([20260106], "skip[0]: expected an ISO-8601 time string, got 20260106"),
        (["2026-01-06"] * 1001, "skip: 1001 entries; at most 1000"),
    ],
)
def test_bad_skips_name_the_entry(skip: object, message: str) -> None:
    with pytest.raises(RecurrenceError) as err:
        series("FREQ=DAILY", "2026-01-05T09:00:00", skip=skip)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("series_id", "at", "text"),
    [
        ("bday-anna", utc("2026-12-24T09:00:00"), "bday-anna@20261224T090000Z"),
        (
            "1735168500123_a1b2c3",
            utc("2026-01-05T09:00:00"),
            "1735168500123_a1b2c3@20260105T090000Z",
        ),
        ("a@b", utc("2026-12-24T09:00:00.123000"), "a@b@20261224T090000.123Z"),
        ("x y", utc("2026-12-24T09:00:00.000001"), "x y@20261224T090000.000001Z"),
    ],
)
def test_occurrence_ids_round_trip(series_id: str, at: datetime, text: str) -> None:
    assert occurrence_id(series_id, at) == text
    assert parse_occurrence_id(text) == (series_id, at)
    assert is_occurrence_id(text)


def test_occurrence_ids_are_valid_ledger_keys_grouped_by_series() -> None:
    """`@` is not a KV key character, so every occurrence key is hex under `h.`, and hex
    keeps prefixes: all occurrences of a series share the key prefix of `<id>@`."""
    ident = occurrence_id("bday-anna", utc("2026-12-24T09:00:00"))
    key = ledger_key(ident)
    assert key.startswith("h.") and key.startswith(ledger_key("bday-anna@"))
    other = ledger_key(occurrence_id("bday-ann", utc("2026-12-24T09:00:00")))
    assert not other.startswith(ledger_key("bday-anna@"))


@pytest.mark.parametrize(
    "text", ["m1", "a@b", "a@20261224T090000", "@20261224T090000Z", "a@2026-12-24T09:00:00Z"]
)
def test_other_ids_are_not_occurrence_ids(text: str) -> None:
    assert parse_occurrence_id(text) is None
