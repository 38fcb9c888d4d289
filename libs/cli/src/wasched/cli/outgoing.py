"""The events the CLI publishes, built and validated before anything connects."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from wasched.common.clock import format_utc
from wasched.common.events import CancelRequest, ScheduleRequest, SendRequest
from wasched.common.recipients import InvalidRecipient, parse_recipient

_E = TypeVar("_E", ScheduleRequest, SendRequest, CancelRequest)


class InputError(ValueError):
    """A value the user typed cannot be sent; one line says which and why."""


def new_message_id(now: datetime) -> str:
    """`<epoch ms>_<6 hex>`, the form the existing writers use."""
    return f"{int(now.timestamp() * 1000)}_{secrets.token_hex(3)}"


def recipient(to: str) -> str:
    """The normalised address: digits for a phone number, the JID for groups and JIDs."""
    try:
        parsed = parse_recipient(to)
    except InvalidRecipient as exc:
        raise InputError(f"--to: {exc}") from None
    return parsed.user if parsed.e164 and "@" not in to else parsed.jid


def pair_phone(phone: str) -> str:
    """Digits of the phone number WhatsApp should send the pairing code to."""
    try:
        parsed = parse_recipient(phone)
    except InvalidRecipient as exc:
        raise InputError(f"--phone: {exc}") from None
    if parsed.e164 is None:
        raise InputError("--phone: a phone number is needed, not a group or JID")
    return parsed.user


def _text(message: str | None, fields: dict[str, Any]) -> str:
    """The text; only a message with media may have none (`""`)."""
    if message is None or not message.strip():
        if fields.get("media") is not None:
            return message or ""
        raise InputError("--message: the text is empty" if message is not None else NO_TEXT)
    return message


NO_TEXT = "--message is required (or --media, to send a file)"


def schedule_request(
    *,
    to: str,
    message: str | None,
    at: datetime,
    now: datetime,
    message_id: str | None = None,
    contact_name: str | None = None,
    fields: dict[str, Any] | None = None,
) -> ScheduleRequest:
    """`fields`: the checked `timezone`, `repeat`, `skip`, `media`, `linkPreview` (kinds.py)."""
    extra = fields or {}
    data = {
        "id": message_id or new_message_id(now),
        "to": recipient(to),
        "message": _text(message, extra),
        "scheduledTime": format_utc(at),
        "contactName": contact_name,
        "createdAt": format_utc(now),
        "createdFrom": "cli",
        **extra,
    }
    return _build(ScheduleRequest, {k: v for k, v in data.items() if v is not None})


def send_request(
    *,
    to: str,
    message: str | None,
    now: datetime,
    message_id: str | None = None,
    fields: dict[str, Any] | None = None,
) -> SendRequest:
    """`fields`: the checked `media` and `linkPreview`."""
    extra = fields or {}
    data = {"id": message_id or new_message_id(now), "to": recipient(to)}
    return _build(SendRequest, {**data, "message": _text(message, extra), **extra})


def cancel_request(message_id: str) -> CancelRequest:
    return _build(CancelRequest, {"id": message_id.strip()})


def _build(model: type[_E], data: dict[str, object]) -> _E:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        text = first["msg"].removeprefix("Value error, ")
        raise InputError(f"--{where}: {text}" if where else text) from None
