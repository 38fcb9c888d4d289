"""The new optional fields read together: one clear reason per bad message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wasched.common.kinds import has_kinds, read_kinds
from wasched.common.localtime import load_zone
from wasched.common.media import MediaKind
from wasched.common.messages import ErrorKind, MessageInvalid, read_message
from wasched.common.recurrence import next_occurrence

LONDON = load_zone("Europe/London")


def msg(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "m1",
        "to": "447957189696",
        "message": "Happy birthday!",
        "scheduledTime": "2026-12-24T09:00:00.000Z",
        "status": "pending",
    }
    raw.update(fields)
    return raw


def test_a_message_without_the_new_fields_has_none_and_reads_as_before() -> None:
    raw = msg(timezone=None, repeat=None, media=None, linkPreview=None, skip=None)
    assert not has_kinds(raw)
    kinds = read_kinds(raw, LONDON)
    assert kinds.scheduled == read_message(raw).scheduled_time
    assert (kinds.zone, kinds.series, kinds.media, kinds.link_preview) == (None, None, None, False)
    assert kinds.text == "Happy birthday!"


def test_a_wall_time_in_a_zone() -> None:
    kinds = read_kinds(msg(scheduledTime="2026-07-01T09:00:00", timezone="Europe/London"), LONDON)
    assert kinds.scheduled == datetime(2026, 7, 1, 8, tzinfo=UTC)
    assert kinds.zone == LONDON


def test_expires_at_is_read_in_the_zone_too() -> None:
    raw = msg(
        scheduledTime="2026-07-01T09:00", timezone="Europe/London", expiresAt="2026-07-01T10:00"
    )
    assert read_kinds(raw, LONDON).expires_at == datetime(2026, 7, 1, 9, tzinfo=UTC)


def test_a_series_without_timezone_runs_in_the_display_zone() -> None:
    kinds = read_kinds(msg(scheduledTime="2026-03-23T09:00:00Z", repeat="FREQ=WEEKLY"), LONDON)
    assert kinds.series is not None
    assert kinds.series.zone == LONDON
    # 09:00 GMT on 23 March; a week later London is on BST and it is still 09:00 there.
    assert next_occurrence(kinds.series, kinds.scheduled) == datetime(2026, 3, 30, 8, tzinfo=UTC)


def test_a_series_in_its_own_zone_from_a_wall_time() -> None:
    raw = msg(scheduledTime="2026-03-01T08:30", timezone="America/New_York", repeat="FREQ=WEEKLY")
    kinds = read_kinds(raw, LONDON)
    assert kinds.series is not None
    assert next_occurrence(kinds.series, kinds.scheduled) == datetime(
        2026, 3, 8, 12, 30, tzinfo=UTC
    )


def test_media_with_the_message_as_caption() -> None:
    raw = msg(media={"type": "image", "key": "whatsapp/media/card.jpg"})
    kinds = read_kinds(raw, LONDON, media_key_prefix="whatsapp/media/")
    assert kinds.media is not None and kinds.media.kind is MediaKind.IMAGE
    assert kinds.text == "Happy birthday!"


def test_media_with_its_own_caption_and_an_empty_message() -> None:
    raw = msg(message="", media={"type": "video", "url": "https://x.org/v.mp4", "caption": "Hi"})
    assert read_kinds(raw, LONDON).text == "Hi"


def test_a_voice_note_carries_no_text() -> None:
    raw = msg(message="", media={"type": "voice", "key": "whatsapp/media/v.ogg"})
    kinds = read_kinds(raw, LONDON)
    assert kinds.text is None
    assert kinds.media is not None and kinds.media.kind is MediaKind.VOICE


def test_link_preview() -> None:
    assert read_kinds(msg(linkPreview=True), LONDON).link_preview is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Europe/Londn"}, "timezone: unknown time zone 'Europe/Londn'"),
        ({"timezone": 1}, "timezone: expected an IANA time zone name such as Europe/London"),
        ({"scheduledTime": "2026-12-24T09:00:00"}, "scheduledTime: '2026-12-24T09:00:00' has no "
                                                   "time zone; add a timezone field"),
        ({"scheduledTime": "2026-12-24T09:00", "repeat": "FREQ=YEARLY"},
         "scheduledTime: '2026-12-24T09:00' has no time zone"),
        ({"expiresAt": "2026-12-24T10:00"}, "expiresAt: '2026-12-24T10:00' has no time zone"),
        ({"repeat": "FREQ=WEEKLY;BYDAY=XX"}, "repeat: BYDAY: expected weekdays like MO,WE"),
        ({"repeat": "0 9 * * 1"}, "repeat: this looks like a cron expression"),
        ({"skip": ["2026-12-25"]}, "skip: only a repeating message (with repeat) has occurrences"),
        ({"repeat": "FREQ=DAILY", "skip": "2026-12-25"}, "skip: expected a list such as"),
        ({"media": {"type": "image", "url": "ftp://x.org/a.jpg"}},
         "media.url: must start with http:// or https://, got 'ftp'"),
        ({"media": {"type": "image", "key": "whatsapp/scheduled.json"}},
         "media.key: must be under whatsapp/media/"),
        ({"media": {"type": "image", "key": "whatsapp/media/a.jpg"}, "linkPreview": True},
         "linkPreview: only a text message has a link preview, not one with media"),
        ({"linkPreview": "true"}, "linkPreview: expected true or false, got 'true'"),
        ({"media": {"type": "audio", "key": "whatsapp/media/a.mp3"}},
         "message: WhatsApp sends audio without text; leave message empty and send the text"),
        ({"media": {"type": "image", "key": "whatsapp/media/a.jpg", "caption": "Other"}},
         "message and media.caption differ: give the caption in one of them"),
        ({"message": "x" * 1025, "media": {"type": "image", "key": "whatsapp/media/a.jpg"}},
         "message: 1025 characters; as a caption WhatsApp allows 1024"),
    ],
)  # fmt: skip
def test_bad_fields_fail_the_message_with_one_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(MessageInvalid) as err:
        read_kinds(msg(**fields), LONDON, media_key_prefix="whatsapp/media/")
    assert err.value.kind is ErrorKind.VALIDATION
    assert message in err.value.reason


def test_the_same_caption_in_both_places_is_fine() -> None:
    raw = msg(media={"type": "image", "key": "whatsapp/media/a.jpg", "caption": "Happy birthday!"})
    assert read_kinds(raw, LONDON).text == "Happy birthday!"
