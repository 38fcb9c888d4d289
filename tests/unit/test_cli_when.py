"""Times typed into `wasched schedule add --at`: zones, DST, relative, the past."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from wasched.cli.when import WhenError, parse_when, require_future

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2025, 12, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2025-12-24T10:00:00Z", LONDON, datetime(2025, 12, 24, 10, 0, tzinfo=UTC)),
        ("2025-12-24T10:00:00+02:00", LONDON, datetime(2025, 12, 24, 8, 0, tzinfo=UTC)),
        # winter: London is UTC+0; summer: UTC+1
        ("2025-12-24T10:00", LONDON, datetime(2025, 12, 24, 10, 0, tzinfo=UTC)),
        ("2026-07-01 10:00", LONDON, datetime(2026, 7, 1, 9, 0, tzinfo=UTC)),
        ("2026-07-01T10:00", ZoneInfo("Asia/Tokyo"), datetime(2026, 7, 1, 1, 0, tzinfo=UTC)),
        ("+90s", LONDON, datetime(2025, 12, 20, 12, 1, 30, tzinfo=UTC)),
        ("+5m", LONDON, datetime(2025, 12, 20, 12, 5, tzinfo=UTC)),
        ("+2h", LONDON, datetime(2025, 12, 20, 14, 0, tzinfo=UTC)),
        ("+1d", LONDON, datetime(2025, 12, 21, 12, 0, tzinfo=UTC)),
        (" 2025-12-24T10:00:00.500Z ", LONDON, datetime(2025, 12, 24, 10, 0, 0, 500000, UTC)),
    ],
)
def test_times_are_read_as_utc(text: str, zone: ZoneInfo, expected: datetime) -> None:
    assert parse_when(text, zone, NOW) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tomorrow", "cannot read the time 'tomorrow'"),
        ("24/12/2025 10:00", "cannot read the time"),
        ("", "cannot read the time"),
        # the clocks go forward at 01:00 on 29 March 2026: 01:30 never happens in London
        ("2026-03-29T01:30", "does not exist in Europe/London"),
        # and back at 02:00 on 25 October 2026: 01:30 happens twice
        ("2026-10-25T01:30", "happens twice in Europe/London"),
    ],
)
def test_unusable_times_say_why(text: str, says: str) -> None:
    with pytest.raises(WhenError, match=says):
        parse_when(text, LONDON, NOW)


def test_a_past_time_is_refused_with_both_times_in_the_zone() -> None:
    past = datetime(2025, 12, 20, 11, 59, tzinfo=UTC)
    with pytest.raises(WhenError) as err:
        require_future(past, NOW, LONDON)
    assert str(err.value) == (
        "20/12/2025, 11:59:00 (Europe/London) is in the past; it is now 20/12/2025, 12:00:00"
    )
    with pytest.raises(WhenError):
        require_future(NOW, NOW, LONDON)
    later = datetime(2025, 12, 20, 12, 0, 1, tzinfo=UTC)
    assert require_future(later, NOW, LONDON) == later
