from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from wasched.common.clock import TimeFormatError, format_display, format_utc, parse_utc

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-12-24T10:00:00Z", datetime(2025, 12, 24, 10, 0, tzinfo=UTC)),
        ("2025-12-24T10:00:00.000Z", datetime(2025, 12, 24, 10, 0, tzinfo=UTC)),
        ("2025-12-24T10:00:00.123456Z", datetime(2025, 12, 24, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2025-12-24T12:00:00+02:00", datetime(2025, 12, 24, 10, 0, tzinfo=UTC)),
        ("2025-06-01T09:30:00-04:30", datetime(2025, 6, 1, 14, 0, tzinfo=UTC)),
        (" 2025-12-24T10:00:00Z ", datetime(2025, 12, 24, 10, 0, tzinfo=UTC)),
    ],
)
def test_iso_times_become_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_utc(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2025-12-24T10:00:00", "has no time zone"),
        ("24/12/2025 10:00", "not an ISO-8601 time"),
        ("tomorrow", "not an ISO-8601 time"),
        ("2025-13-01T00:00:00Z", "not an ISO-8601 time"),
        ("", "expected an ISO-8601 time string"),
        (1735034400, "expected an ISO-8601 time string"),
        (None, "expected an ISO-8601 time string"),
    ],
)
def test_bad_times_say_why(value: object, says: str) -> None:
    with pytest.raises(TimeFormatError, match=says):
        parse_utc(value)


def test_stored_form_matches_existing_writers() -> None:
    assert (
        format_utc(datetime(2025, 12, 23, 8, 50, 2, 311000, tzinfo=UTC))
        == "2025-12-23T08:50:02.311Z"
    )
    assert format_utc(datetime(2025, 12, 23, 8, 50, 2, tzinfo=UTC)) == "2025-12-23T08:50:02.000Z"


def test_stored_form_is_javascripts_to_iso_string_even_with_microseconds() -> None:
    """`new Date(...).toISOString()`: milliseconds, always three digits, `Z`."""
    moment = datetime(2025, 12, 23, 8, 50, 2, 311999, tzinfo=UTC)
    assert format_utc(moment) == "2025-12-23T08:50:02.311Z"
    assert format_utc(datetime(2025, 12, 23, 8, 50, 2, 999, tzinfo=UTC)).endswith("02.000Z")


@pytest.mark.parametrize(
    ("utc", "wall"),
    [
        (datetime(2025, 12, 24, 10, 0, 5, tzinfo=UTC), "24/12/2025, 10:00:05"),  # GMT
        (datetime(2025, 7, 1, 10, 0, 5, tzinfo=UTC), "01/07/2025, 11:00:05"),  # BST
        (
            datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),
            "29/03/2026, 00:59:59",
        ),  # before spring change
        (datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC), "29/03/2026, 02:00:00"),  # after it
    ],
)
def test_log_times_in_display_zone(utc: datetime, wall: str) -> None:
    assert format_display(utc, LONDON) == wall
