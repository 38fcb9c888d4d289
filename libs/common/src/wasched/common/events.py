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
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from wasched.common.clock import TimeFormatError, to_storable_utc, utcnow
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


class _Text(Event):
    to: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=65_536)
    contact_name: str | None = None

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message text is empty")
        return value


class DueMessage(_Text):
    """`wasched.due`: a pending message whose time has come (poller → sender)."""

    id: str = Field(min_length=1)
    scheduled_time: UtcTime
    expires_at: UtcTime | None = None
    version: str | None = Field(None, max_length=64)
    """`messages.content_version` of the stored message this hand-over was built from. The
    sender claims it only if the ledger does not say a newer version superseded it. None on
    events from pollers older than versioning."""


class SendRequest(_Text):
    """`wasched.send`: send now, from another system."""

    id: str | None = Field(None, min_length=1, max_length=200)


class ScheduleRequest(_Text):
    """`wasched.schedule`: add a message to the stored document.

    `scheduledTime`/`expiresAt` without an offset are wall-clock times in `timezone`; the
    poller checks the new fields (`timezone`, `repeat`, `skip`, `media`, `linkPreview`) with
    the same rules as a stored message's (`kinds.read_kinds`) before it adds the message."""

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
