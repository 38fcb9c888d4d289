"""The events the CLI publishes, built and validated before anything connects."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TypeVar

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


def _text(message: str) -> str:
    if not message.strip():
        raise InputError("--message: the text is empty")
    return message


def schedule_request(
    *,
    to: str,
    message: str,
    at: datetime,
    now: datetime,
    message_id: str | None = None,
    contact_name: str | None = None,
) -> ScheduleRequest:
    fields = {
        "id": message_id or new_message_id(now),
        "to": recipient(to),
        "message": _text(message),
        "scheduledTime": format_utc(at),
        "contactName": contact_name,
        "createdAt": format_utc(now),
        "createdFrom": "cli",
    }
    return _build(ScheduleRequest, {k: v for k, v in fields.items() if v is not None})


def send_request(
    *, to: str, message: str, now: datetime, message_id: str | None = None
) -> SendRequest:
    fields = {"id": message_id or new_message_id(now), "to": recipient(to)}
    return _build(SendRequest, {**fields, "message": _text(message)})


def cancel_request(message_id: str) -> CancelRequest:
    return _build(CancelRequest, {"id": message_id.strip()})


def _build(model: type[_E], data: dict[str, object]) -> _E:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        raise InputError(f"--{where}: {first['msg'].removeprefix('Value error, ')}") from None
