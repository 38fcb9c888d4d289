"""Event payloads on NATS: JSON, camelCase field names matching the stored document."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

from wasched.common.clock import TimeFormatError, to_storable_utc, utcnow
from wasched.common.kinds import Content, read_content
from wasched.common.media import Media, MediaKind, read_media
from wasched.common.messages import ErrorKind, Status


def _storable(moment: datetime) -> datetime:
    try:
        return to_storable_utc(moment)
    except TimeFormatError as exc:
        raise ValueError(str(exc)) from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_storable)]
"""An aware time that converts to UTC and fits the stored form."""


def _storable_if_aware(moment: datetime) -> datetime:
    return _storable(moment) if moment.tzinfo is not None else moment


UtcOrWallTime = Annotated[datetime, AfterValidator(_storable_if_aware)]
"""An instant (as `UtcTime`), or a wall-clock time without an offset (read in `timezone`)."""


class Event(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def to_json(self) -> bytes:
        if not self.model_extra:
            return self.model_dump_json(by_alias=True, exclude_none=True).encode()
        # `exclude_none` is for our optional fields; a caller's extra field keeps its null.
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        data.update(self.model_extra)
        return json.dumps(data, ensure_ascii=False).encode()


class MediaSpec(Event):
    """`media` on the wire (`{"type": "image", "key": "whatsapp/media/card.jpg"}`), checked by
    the same rules as a stored message's (`wasched.common.media.read_media`)."""

    type: MediaKind
    url: str | None = Field(None, max_length=2048)
    key: str | None = Field(None, max_length=1024)
    caption: str | None = None
    file_name: str | None = None
    mime_type: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if isinstance(data, dict):
            read_media({_WIRE_NAMES.get(name, name): value for name, value in data.items()})
        return data

    @classmethod
    def from_media(cls, media: Media) -> MediaSpec:
        """The spec of a media field already read (`Kinds.media`): what the poller hands over."""
        return cls(
            type=media.kind,
            url=media.url,
            key=media.key,
            caption=media.caption,
            file_name=media.file_name,
            mime_type=media.mime_type,
        )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


_WIRE_NAMES = {"file_name": "fileName", "mime_type": "mimeType"}
_SCHEDULE_ONLY = ("repeat", "timezone", "skip")


class _Text(Event):
    to: str = Field(min_length=1, max_length=200)
    message: str = Field(max_length=65_536)
    """May be empty (`""`) only with media: an audio file or a voice note carries no text."""
    contact_name: str | None = None


class _Content(_Text):
    media: MediaSpec | None = None
    link_preview: bool | None = None
    """`true`: send the text with a preview of its first link (only a text message)."""

    @model_validator(mode="after")
    def _one_content(self) -> _Content:
        self.content()
        return self

    def content(self, media_key_prefix: str | None = None) -> Content:
        """The text, media and preview to send; `media_key_prefix` is where a `media.key`
        must point (the sender's `MEDIA_KEY_PREFIX`). Raises `MessageInvalid`."""
        raw = {
            "message": self.message,
            "media": self.media.wire() if self.media is not None else None,
            "linkPreview": self.link_preview,
        }
        return read_content(raw, media_key_prefix=media_key_prefix)


class DueMessage(_Content):
    """`wasched.due`: a pending message whose time has come (poller → sender)."""

    id: str = Field(min_length=1)
    scheduled_time: UtcTime
    expires_at: UtcTime | None = None
    version: str | None = Field(None, max_length=64)
    """`messages.content_version` of the stored message this hand-over was built from. The
    sender claims it only if the ledger does not say a newer version superseded it. None on
    events from pollers older than versioning."""


class SendRequest(_Content):
    """`wasched.send`: send now, from another system."""

    id: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _sent_now(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _SCHEDULE_ONLY:
                if data.get(name) is not None:
                    raise ValueError(
                        f"{name}: a send request is sent now, once; to repeat a message or "
                        "give it a local time, add it on wasched.schedule"
                    )
        return data


class ScheduleRequest(_Text):
    """`wasched.schedule`: add a message to the stored document.

    `scheduledTime`/`expiresAt` without an offset are wall-clock times in `timezone`; the
    poller checks the new fields (`timezone`, `repeat`, `skip`, `media`, `linkPreview`) with
    the same rules as a stored message's (`kinds.read_kinds`) before it adds the message.
    Fields beyond these (`media`, `linkPreview`, a writer's own) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    scheduled_time: UtcOrWallTime
    expires_at: UtcOrWallTime | None = None
    timezone: str | None = Field(None, max_length=64)
    """IANA zone, e.g. `Europe/London`: a time without an offset is wall-clock time there."""
    repeat: str | None = Field(None, max_length=1000)
    """An RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO`): repeat from `scheduledTime` on."""
    skip: list[str] | None = Field(None, max_length=1000)
    """Occurrences to leave out: local dates (`2026-12-28`) or times."""

    @model_validator(mode="after")
    def _wall_times_need_a_zone(self) -> ScheduleRequest:
        for name, value in (("scheduledTime", self.scheduled_time), ("expiresAt", self.expires_at)):
            if value is not None and value.tzinfo is None and self.timezone is None:
                raise ValueError(
                    f"{name}: {value.isoformat()!r} has no time zone; add a timezone field "
                    '(e.g. "timezone": "Europe/London") to read it as wall-clock time there, '
                    "or write it in UTC with a trailing Z"
                )
        return self

    @model_validator(mode="after")
    def _some_text(self) -> ScheduleRequest:
        if not self.message.strip() and (self.model_extra or {}).get("media") is None:
            raise ValueError("message: message text is empty")
        return self


class CancelRequest(Event):
    """`wasched.cancel`."""

    id: str = Field(min_length=1, max_length=200)


class Outcome(Event):
    """`wasched.outcome`: what happened to one message (sender → poller, health)."""

    id: str
    status: Status
    at: UtcTime = Field(default_factory=utcnow)
    sent_at: UtcTime | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    wa_message_id: str | None = None
    lateness_seconds: float | None = None
    attempts: int | None = None
    to: str | None = None
    """The recipient as written, so the status page can show it masked (optional)."""
    version: str | None = None
    """The content version that was sent or judged (from the `DueMessage`), when known."""


class Receipt(Event):
    """`wasched.receipt`: WhatsApp reported the message delivered or read."""

    id: str
    kind: Literal["delivered", "read", "played"]
    at: UtcTime
    wa_message_id: str | None = None


class Reply(Event):
    """Answer to request-reply callers of the inbound subjects."""

    ok: bool
    error: str | None = None
    id: str | None = None


class Heartbeat(Event):
    """`wasched.heartbeat.<service>`: live state, no persistence."""

    service: str
    at: UtcTime = Field(default_factory=utcnow)
    details: dict[str, Any] = Field(default_factory=dict)


SenderState = Literal[
    "starting",
    "pairing",
    "connecting",
    "connected",
    "disconnected",
    "logged_out",
    "banned",
    "replaced",
    "outdated",
    "stopped",
]


class SenderStatus(Event):
    """`wasched.status.sender`: connection state, with the QR or pair code when linking."""

    state: SenderState
    at: UtcTime = Field(default_factory=utcnow)
    transport: str = "neonize"
    detail: str | None = None
    qr: str | None = None
    pair_code: str | None = None
    until: datetime | None = None
