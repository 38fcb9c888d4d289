"""docs/design.md, "Message kinds": its JSON examples are accepted, and its error texts are
the real ones."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wasched.common.kinds import has_kinds, read_kinds
from wasched.common.localtime import load_zone
from wasched.common.messages import MessageInvalid
from wasched.common.recurrence import occurrences

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"
LONDON = load_zone("Europe/London")


def section() -> str:
    text = DESIGN.read_text()
    start = text.index("## Message kinds")
    return text[start : text.index("\n## ", start + 1)]


def examples() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", section(), re.S)
    return {raw["id"]: raw for raw in map(json.loads, blocks)}


def test_every_example_is_accepted() -> None:
    found = examples()
    assert set(found) == {"call-mum", "bday-anna", "bins", "xmas-card", "menu", "article"}
    for raw in found.values():
        assert has_kinds(raw)
        read_kinds(raw, LONDON, media_key_prefix="whatsapp/media/")


def test_the_examples_mean_what_the_text_says() -> None:
    found = examples()
    call = read_kinds(found["call-mum"], LONDON)
    assert call.scheduled == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # the jump
    bins = read_kinds(found["bins"], LONDON).series
    assert bins is not None
    mondays = [o.date().isoformat() for o in occurrences(bins)]
    assert "2026-04-06" not in mondays and "2026-12-28" not in mondays
    assert mondays[-1] == "2026-12-21" and len(mondays) == 50
    assert read_kinds(found["menu"], LONDON).text == "Tonight's menu"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"scheduledTime": "2026-12-24T09:00:00"},
            "scheduledTime: '2026-12-24T09:00:00' has no time zone; add a timezone field "
            '(e.g. "timezone": "Europe/London") to read it as wall-clock time there, or write '
            "it in UTC with a trailing Z (e.g. 2026-12-24T09:00:00Z)",
        ),
        (
            {"timezone": "europe/london"},
            "timezone: unknown time zone 'europe/london'; did you mean 'Europe/London'?",
        ),
        (
            {"scheduledTime": "2026-12-24", "timezone": "Europe/London"},
            "scheduledTime: '2026-12-24' has no time of day (e.g. 2026-12-24T09:00:00)",
        ),
        (
            {"repeat": "FREQ=WEEKLY;BYDAY=XX"},
            "repeat: BYDAY: expected weekdays like MO,WE or 1MO, -1FR; got 'XX'",
        ),
        (
            {"repeat": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"},
            "repeat: BYMONTHDAY: 30 never falls in BYMONTH=2",
        ),
        (
            {"repeat": "FREQ=DAILY;COUNT=3;UNTIL=20270101"},
            "repeat: COUNT: COUNT and UNTIL cannot be used together (RFC 5545)",
        ),
        (
            {"repeat": "DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY"},
            "repeat: DTSTART: not allowed inside repeat: the first occurrence is scheduledTime",
        ),
        (
            {"media": {"type": "image", "url": "ftp://x.org/a.jpg"}},
            "media.url: must start with http:// or https://,\ngot 'ftp'",
        ),
        (
            {"media": {"type": "image", "key": "whatsapp/x.jpg"}},
            "media.key: must be under whatsapp/media/ (where media is kept)",
        ),
        (
            {"media": {"type": "image", "key": "whatsapp/media/x.jpg", "filename": "x"}},
            "media.filename: did you mean fileName?",
        ),
    ],
)
def test_the_documented_errors_are_the_real_ones(fields: dict[str, Any], error: str) -> None:
    assert error in section(), "the doc no longer shows this error"
    raw = {"id": "m", "to": "447957189696", "message": "hi",
           "scheduledTime": "2026-12-24T09:00:00Z", **fields}  # fmt: skip
    with pytest.raises(MessageInvalid) as err:
        read_kinds(raw, LONDON, media_key_prefix="whatsapp/media/")
    assert err.value.reason == error.replace("\n", " ")


def test_the_series_rules_the_doc_states_are_the_real_ones() -> None:
    from wasched.poller.limits import catch_up_grace
    from wasched.poller.reading import read

    text = " ".join(section().split())
    assert "300 s with the default poll interval" in text
    assert catch_up_grace(60).total_seconds() == 300
    assert catch_up_grace(1).total_seconds() == 60  # "at least 60 s"
    raw = {**examples()["bins"], "expiresAt": "2026-12-31T00:00:00Z"}
    with pytest.raises(MessageInvalid) as err:
        read(raw, LONDON)
    assert err.value.reason in text
