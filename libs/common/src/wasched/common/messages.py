"""A typed, validated view of one stored message (the raw dict stays the source)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from wasched.common.clock import TimeFormatError, parse_utc
from wasched.common.recipients import InvalidRecipient, Recipient, parse_recipient

MAX_TEXT_CHARS = 65_536

CONTENT_FIELDS = (
    "to",
    "message",
    "scheduledTime",
    "expiresAt",
    "timezone",
    "repeat",
    "media",
    "linkPreview",
)
"""The fields that decide what is sent and when. A change to any of them is a new version of
the message: an earlier hand-over of it is superseded, an earlier rejection of it may be lifted."""


class ErrorKind(StrEnum):
    INVALID_RECIPIENT = "invalid_recipient"
    NOT_ON_WHATSAPP = "not_on_whatsapp"
    EXPIRED = "expired"
    INTERRUPTED = "interrupted"
    WHATSAPP_ERROR = "whatsapp_error"
    VALIDATION = "validation"
    MEDIA_UNAVAILABLE = "media_unavailable"
    """The media could not be fetched (missing object, HTTP error, timeout): nothing was sent."""
    MEDIA_TOO_LARGE = "media_too_large"
    """The media is over the size limit for its type: nothing was sent."""
    MEDIA_TYPE = "media_type"
    """The content is not a format WhatsApp takes for the declared type: nothing was sent."""


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class MessageInvalid(ValueError):
    def __init__(self, kind: ErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ScheduledMessage:
    id: str
    to: str
    recipient: Recipient
    text: str
    scheduled_time: datetime
    contact_name: str | None = None
    expires_at: datetime | None = None


def content_version(raw: dict[str, Any]) -> str:
    """A short fingerprint of what a stored message would send, and when.

    Computed over the raw stored values of `CONTENT_FIELDS` (absent fields are left out, so a
    field added to the format later does not change the version of messages without it).
    Display fields (`contactName`) and wasched's own fields (`status`, `sentAt`, ...) are not
    part of it.
    """
    content = {name: raw[name] for name in CONTENT_FIELDS if name in raw}
    text = json.dumps(
        content, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_message(
    raw: dict[str, Any],
    *,
    scheduled: datetime | None = None,
    expires_at: datetime | None = None,
    text: str | None = None,
) -> ScheduledMessage:
    """Validate one pending message, or raise `MessageInvalid` naming the field.

    A message with the optional fields of `wasched.common.kinds` has its times read there
    (a wall time in its `timezone`) and, with media, its text (the caption, or none): pass
    them as `scheduled`/`expires_at` and `text`, and only the rest is read here.
    """
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise MessageInvalid(ErrorKind.VALIDATION, "id is missing or not a string")
    to = raw.get("to")
    if not isinstance(to, str) or not to.strip():
        raise MessageInvalid(ErrorKind.VALIDATION, "to is missing or empty")
    if text is None:
        text = _text(raw.get("message"))
    if scheduled is None:
        scheduled = _time_field(raw, "scheduledTime", required=True)
        expires_at = _time_field(raw, "expiresAt", required=False)
    assert scheduled is not None
    name = raw.get("contactName")
    try:
        recipient = parse_recipient(to)
    except InvalidRecipient as exc:
        raise MessageInvalid(ErrorKind.INVALID_RECIPIENT, str(exc)) from None
    return ScheduledMessage(
        id=ident,
        to=to,
        recipient=recipient,
        text=text,
        scheduled_time=scheduled,
        contact_name=name if isinstance(name, str) else None,
        expires_at=expires_at,
    )


def _text(text: object) -> str:
    if not isinstance(text, str):
        raise MessageInvalid(ErrorKind.VALIDATION, "message text is missing or not a string")
    if not text.strip():
        raise MessageInvalid(ErrorKind.VALIDATION, "message text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise MessageInvalid(
            ErrorKind.VALIDATION,
            f"message text is {len(text)} characters; at most {MAX_TEXT_CHARS}",
        )
    return text


def _time_field(raw: dict[str, Any], name: str, *, required: bool) -> datetime | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise MessageInvalid(ErrorKind.VALIDATION, f"{name} is missing")
    try:
        return parse_utc(value)
    except TimeFormatError as exc:
        raise MessageInvalid(ErrorKind.VALIDATION, f"{name}: {exc}") from None
    except (OverflowError, ValueError) as exc:
        raise MessageInvalid(ErrorKind.VALIDATION, f"{name}: out of range ({exc})") from None
