"""The optional fields that make a message more than a one-time text at a UTC instant.

`timezone`, `repeat`, `skip`, `media`, `linkPreview`: each is optional, and a message
without any of them (`has_kinds(raw)` is False) is read exactly as before by
`messages.read_message`. `read_kinds` checks them together — they depend on each
other (`scheduledTime` is read in `timezone`; a series runs in `timezone`, else the
display zone; audio carries no text) — and raises `MessageInvalid` with one clear
reason, as `read_message` does, so one bad message never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from wasched.common.localtime import LocalTimeError, load_zone, parse_time
from wasched.common.media import (
    MAX_CAPTION_CHARS,
    Media,
    MediaInvalid,
    MediaKind,
    read_link_preview,
    read_media,
)
from wasched.common.messages import ErrorKind, MessageInvalid
from wasched.common.recurrence import RecurrenceError, Series, read_series

KIND_FIELDS = ("timezone", "repeat", "skip", "media", "linkPreview")


@dataclass(frozen=True, slots=True)
class Kinds:
    scheduled: datetime
    """The instant of `scheduledTime` (aware UTC); for a series, its first occurrence."""
    expires_at: datetime | None
    zone: ZoneInfo | None
    """The message's own `timezone` (None: not given)."""
    series: Series | None
    media: Media | None
    text: str | None
    """What to send as text: the message (no media), or the caption (image, video,
    document: `media.caption`, else the message). None: audio or voice, or no caption."""
    link_preview: bool


@dataclass(frozen=True, slots=True)
class Content:
    media: Media | None
    text: str | None
    """The text to send: the message, or the caption (None: audio, voice, no caption)."""
    link_preview: bool


def has_kinds(raw: dict[str, Any]) -> bool:
    """Whether any of the new fields is set (null counts as not set)."""
    return any(raw.get(name) is not None for name in KIND_FIELDS)


def read_kinds(
    raw: dict[str, Any], default_zone: ZoneInfo, *, media_key_prefix: str | None = None
) -> Kinds:
    """Validate the new fields of one stored message (or `ScheduleRequest`).

    `default_zone` (`DISPLAY_TIMEZONE`) is the zone a series without `timezone` runs in;
    a wall time without an offset always needs `timezone`. `media_key_prefix` (e.g.
    `whatsapp/media/`) is where `media.key` must point.
    """
    zone = _zone(raw)
    try:
        scheduled = parse_time(raw.get("scheduledTime"), zone)
        expires = raw.get("expiresAt")
        expires_at = parse_time(expires, zone, field="expiresAt") if expires is not None else None
    except LocalTimeError as exc:
        raise _invalid(str(exc)) from None
    series = _series(raw, scheduled, zone or default_zone)
    content = read_content(raw, media_key_prefix=media_key_prefix)
    return Kinds(
        scheduled=scheduled,
        expires_at=expires_at,
        zone=zone,
        series=series,
        media=content.media,
        text=content.text,
        link_preview=content.link_preview,
    )


def read_content(raw: dict[str, Any], *, media_key_prefix: str | None = None) -> Content:
    """What a message sends: `message`, `media` and `linkPreview` checked together.

    The one set of rules for a stored message, a `wasched.due` hand-over and a
    `wasched.send` request: audio carries no text, a caption is `media.caption` or the
    message (not two different texts), a link preview only on a text. Raises
    `MessageInvalid`."""
    try:
        media = (
            read_media(raw["media"], key_prefix=media_key_prefix) if _set(raw, "media") else None
        )
        link_preview = read_link_preview(raw.get("linkPreview"))
    except MediaInvalid as exc:
        raise _invalid(str(exc)) from None
    if media is not None and link_preview:
        raise _invalid("linkPreview: only a text message has a link preview, not one with media")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise _invalid(f"message: expected text, got {type(message).__name__}")
    text = _text(message, media)
    if media is None and text is None:
        raise _invalid("message: message text is empty")
    return Content(media=media, text=text, link_preview=link_preview)


def _zone(raw: dict[str, Any]) -> ZoneInfo | None:
    if not _set(raw, "timezone"):
        return None
    try:
        return load_zone(raw["timezone"])
    except LocalTimeError as exc:
        raise _invalid(f"timezone: {exc}") from None


def _series(raw: dict[str, Any], scheduled: datetime, zone: ZoneInfo) -> Series | None:
    if not _set(raw, "repeat"):
        if _set(raw, "skip"):
            raise _invalid("skip: only a repeating message (with repeat) has occurrences to skip")
        return None
    try:
        return read_series(
            raw["repeat"], _start(raw["scheduledTime"], scheduled), zone, raw.get("skip")
        )
    except RecurrenceError as exc:
        raise _invalid(str(exc)) from None


def _start(written: str, instant: datetime) -> datetime:
    """The series starts from the wall time as written (01:30, even on a day the clocks
    skip it) or, for an instant, from that instant."""
    parsed = datetime.fromisoformat(written.strip())
    return parsed if parsed.tzinfo is None else instant


def _text(message: object, media: Media | None) -> str | None:
    text = message if isinstance(message, str) and message.strip() else None
    if media is None:
        return text
    if media.kind in {MediaKind.AUDIO, MediaKind.VOICE}:
        if text is not None:
            raise _invalid(
                f"message: WhatsApp sends {media.kind.value} without text; leave message "
                "empty and send the text as a message of its own"
            )
        return None
    if media.caption is not None and text is not None and media.caption != text:
        raise _invalid("message and media.caption differ: give the caption in one of them")
    caption = media.caption or text
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        raise _invalid(
            f"message: {len(caption)} characters; as a caption WhatsApp allows {MAX_CAPTION_CHARS}"
        )
    return caption


def _set(raw: dict[str, Any], name: str) -> bool:
    return raw.get(name) is not None


def _invalid(reason: str) -> MessageInvalid:
    return MessageInvalid(ErrorKind.VALIDATION, reason)
