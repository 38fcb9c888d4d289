"""Reading a message with the new fields wherever the poller reads one: the instant of a
wall time, and what a hand-over carries."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from wasched.common.messages import read_message
from wasched.poller.plan import Action, Limits, decide, decide_fire
from wasched.poller.reading import Reading, read

LONDON = ZoneInfo("Europe/London")
LIMITS = Limits(horizon=timedelta(days=400), max_lateness=timedelta(days=1))


def local(wall: str, zone: str = "Europe/London", **fields: Any) -> dict[str, Any]:
    raw = {"id": "m", "to": "447957189696", "message": "Call mum", "scheduledTime": wall,
           "timezone": zone, "status": "pending"}  # fmt: skip
    raw.update(fields)
    return raw


@pytest.mark.parametrize(
    ("wall", "zone", "instant"),
    [
        ("2027-03-28T01:30:00", "Europe/London", datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),
        ("2027-10-31T01:30:00", "Europe/London", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("2027-03-14T02:30:00", "America/New_York", datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),
        ("2027-04-04T02:30:00", "Australia/Sydney", datetime(2027, 4, 3, 15, 30, tzinfo=UTC)),
        ("2027-07-01T09:00:00", "Europe/London", datetime(2027, 7, 1, 8, 0, tzinfo=UTC)),
    ],
)
def test_a_wall_time_is_scheduled_and_handed_over_at_its_instant(
    wall: str, zone: str, instant: datetime
) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    step = decide("m", local(wall, zone), None, now=now, limits=LIMITS)
    assert (step.action, step.at) == (Action.SCHEDULE, instant)
    due = step.due_message()
    assert due.scheduled_time == instant
    fired = decide_fire(due, local(wall, zone), None, handed=None, now=instant, limits=LIMITS)
    assert fired.action is Action.DISPATCH  # its time, by NATS' clock


def test_expires_at_in_local_time_is_read_in_the_zone_too() -> None:
    raw = local("2027-07-01T09:00:00", expiresAt="2027-07-01T09:30:00")
    late = datetime(2027, 7, 1, 8, 31, tzinfo=UTC)  # 09:31 BST
    step = decide("m", raw, None, now=late, limits=LIMITS)
    assert step.action is Action.EXPIRE
    assert step.outcome is not None and "2027-07-01T08:30:00.000Z" in (step.outcome.error or "")


def test_a_message_of_the_original_format_is_read_as_before() -> None:
    raw = {"id": "m", "to": "447957189696", "message": "hi",
           "scheduledTime": "2027-07-01T09:00:00Z", "status": "pending"}  # fmt: skip
    assert read(raw, LONDON) == Reading(read_message(raw))


def test_the_hand_over_carries_a_link_preview() -> None:
    raw = local("2027-07-01T09:00:00", linkPreview=True)
    step = decide("m", raw, None, now=datetime(2026, 12, 1, tzinfo=UTC), limits=LIMITS)
    assert step.action is Action.SCHEDULE
    due = step.due_message()
    assert (due.link_preview, due.media, due.message) == (True, None, "Call mum")


@pytest.mark.parametrize(
    ("media", "message", "text"),
    [
        ({"type": "image", "key": "whatsapp/media/card.jpg", "caption": "Hi"}, "", "Hi"),
        ({"type": "image", "key": "whatsapp/media/card.jpg"}, "Hi", "Hi"),
        ({"type": "voice", "url": "https://example.org/v.ogg"}, "", ""),
    ],
)
def test_the_hand_over_carries_the_media_and_the_text_it_sends(
    media: dict[str, Any], message: str, text: str
) -> None:
    raw = local("2027-07-01T09:00:00", message=message, media=media)
    limits = replace(LIMITS, media_prefix="whatsapp/media/")
    step = decide("m", raw, None, now=datetime(2026, 12, 1, tzinfo=UTC), limits=limits)
    assert step.action is Action.SCHEDULE
    wire = json.loads(step.due_message().to_json())
    assert wire["media"] == media
    assert wire["message"] == text
    assert "linkPreview" not in wire


def test_a_media_key_outside_the_media_prefix_is_refused_before_any_hand_over() -> None:
    raw = local("2027-07-01T09:00:00", media={"type": "image", "key": "whatsapp/scheduled.json"})
    limits = replace(LIMITS, media_prefix="whatsapp/media/")
    step = decide("m", raw, None, now=datetime(2026, 12, 1, tzinfo=UTC), limits=limits)
    assert step.action is Action.REJECT
    assert step.outcome is not None and "media.key: must be under whatsapp/media/" in (
        step.outcome.error or ""
    )


def test_each_poll_reads_a_series_once_per_content_and_an_edit_is_read_again() -> None:
    raw = local("2027-07-01T09:00:00", repeat="FREQ=DAILY")
    first, again = read(raw, LONDON), read(dict(raw), LONDON)
    assert first.kinds is again.kinds  # the same content: read once, its rule kept
    skipped = read({**raw, "skip": ["2027-07-02"]}, LONDON)
    assert skipped.series is not None and first.series is not None
    assert skipped.series.skip != first.series.skip
    moved = read({**raw, "scheduledTime": "2027-07-01T10:00:00"}, LONDON)
    assert moved.message.scheduled_time == datetime(2027, 7, 1, 9, tzinfo=UTC)
    other_zone = read(raw, ZoneInfo("UTC"))  # only a series without timezone uses it
    assert other_zone.kinds is not first.kinds
