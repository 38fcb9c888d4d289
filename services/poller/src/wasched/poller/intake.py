"""Requests from other systems: `wasched.schedule` adds a message, `wasched.cancel` cancels one.

Pure parsing and verdicts; every refusal is a `Rejected` whose text goes back
to the caller as it is, so it names the field or the id at fault.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from wasched.common.clock import TimeFormatError, format_utc, parse_utc
from wasched.common.document import Document, JsonObject
from wasched.common.events import CancelRequest, ScheduleRequest
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import MessageInvalid, Status
from wasched.common.recurrence import is_occurrence_id
from wasched.poller.reading import Reading, read

CREATED_FROM = "nats"
OWNED_FIELDS = ("sentAt", "error", "errorKind", "waMessageId", "deliveredAt", "readAt", "attempts")
OWNED_FIELDS += ("sentAs", "nextAt", "lastSentAt", "lastStatus", "occurrences", "history")
"""Fields only wasched writes: a request may carry them empty (as existing writers do), no more."""
_NOT_CONTENT = {"status", "createdAt", "createdFrom", *OWNED_FIELDS}
_TIMES = {"scheduledTime", "expiresAt"}

M = TypeVar("M", bound=BaseModel)


class Rejected(ValueError):
    """A request wasched will not carry out; the text is the answer to the caller."""


class Admission(StrEnum):
    ADD = "add"
    SAME = "same"  # the same id with the same content again: nothing to do


class CancelVerdict(StrEnum):
    CANCEL = "cancel"
    ALREADY = "already"  # cancelled before: answer ok again


def parse_schedule(data: bytes) -> ScheduleRequest:
    return _parse(ScheduleRequest, data, "schedule")


def parse_cancel(data: bytes) -> CancelRequest:
    return _parse(CancelRequest, data, "cancel")


def _parse(model: type[M], data: bytes, what: str) -> M:
    try:
        return parse_event(model, data)
    except Rejected as exc:
        raise Rejected(f"invalid {what} request: {exc}") from None


def parse_event(model: type[M], data: bytes) -> M:
    """Validate an event, including times that cannot be expressed in UTC (year 10000)."""
    try:
        event = model.model_validate_json(data)
    except ValidationError as exc:
        raise Rejected(describe(exc)) from None
    for name, value in event:
        if isinstance(value, datetime) and value.tzinfo is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                field = model.model_fields[name].alias or name
                raise Rejected(f"{field}: time out of range") from None
    return event


def describe(exc: ValidationError) -> str:
    """pydantic's report in one line: `field: problem; field: problem`."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def new_message(
    request: ScheduleRequest,
    now: datetime,
    zone: ZoneInfo | None = None,
    media_prefix: str | None = None,
) -> JsonObject:
    """The stored form of a requested message, in the field order existing writers use."""
    return admitted(request, now, zone, media_prefix)[0]


def admitted(
    request: ScheduleRequest,
    now: datetime,
    zone: ZoneInfo | None = None,
    media_prefix: str | None = None,
) -> tuple[JsonObject, Reading]:
    """`new_message`, and how the poller reads it (its kinds checked as for a stored message:
    `zone` is `DISPLAY_TIMEZONE`, `media_prefix` where `media.key` must point)."""
    if is_occurrence_id(request.id):
        raise Rejected(
            f"id {request.id!r} has the form wasched gives the occurrences of a repeating "
            "message (<id>@<UTC time>); use another id"
        )
    extra: dict[str, Any] = dict(request.model_extra or {})
    status = extra.pop("status", Status.PENDING.value)
    if status != Status.PENDING:
        raise Rejected(
            f"message {request.id!r}: status must be pending or left out, got {status!r}"
        )
    for name in OWNED_FIELDS:
        if extra.get(name) is not None:
            raise Rejected(f"message {request.id!r}: {name} is set by wasched, not by requests")
    raw: JsonObject = {"id": request.id, "to": request.to}
    if request.contact_name is not None:
        raw["contactName"] = request.contact_name
    raw["message"] = request.message
    raw["scheduledTime"] = _stored_time(request.scheduled_time)
    raw["status"] = Status.PENDING.value
    raw["createdAt"] = extra.pop("createdAt", format_utc(now))
    raw["createdFrom"] = extra.pop("createdFrom", CREATED_FROM)
    if request.expires_at is not None:
        raw["expiresAt"] = _stored_time(request.expires_at)
    for name in ("timezone", "repeat", "skip"):
        if (value := getattr(request, name)) is not None:
            raw[name] = value
    raw.update(extra)
    try:
        reading = read(raw, zone or ZoneInfo("Europe/London"), media_prefix)
    except MessageInvalid as exc:
        raise Rejected(f"message {request.id!r}: {exc.reason}") from None
    return raw, reading


def _stored_time(value: datetime) -> str:
    """An instant in the writers' UTC form; a wall time (with `timezone`) as written."""
    return format_utc(value) if value.tzinfo is not None else value.isoformat()


def admit(doc: Document, new: JsonObject, entry: LedgerEntry | None) -> Admission:
    """Add a new id; accept an exact repeat; refuse a reused id (the ledger remembers deleted ones)."""
    ident = new["id"]
    existing = doc.by_key().get(ident)
    if existing is None:
        if entry is not None:
            raise Rejected(
                f"id {ident!r} was used before (the ledger has it as {entry.state.value}); "
                "use a new id"
            )
        return Admission.ADD
    differing = content_differences(existing, new)
    if not differing:
        return Admission.SAME
    raise Rejected(
        f"id {ident!r} is already in the schedule with different {', '.join(differing)}; "
        "use a new id"
    )


def content_differences(existing: JsonObject, new: JsonObject) -> list[str]:
    names = sorted((set(existing) | set(new)) - _NOT_CONTENT)
    return [n for n in names if _comparable(n, existing.get(n)) != _comparable(n, new.get(n))]


def _comparable(name: str, value: object) -> object:
    if name in _TIMES and isinstance(value, str):
        try:
            return format_utc(parse_utc(value))
        except (TimeFormatError, ValueError, OverflowError):
            return value
    return value


def cancel_verdict(raw: JsonObject | None, message_id: str) -> CancelVerdict:
    if raw is None:
        raise Rejected(f"no message with id {message_id!r} in the schedule")
    status = raw.get("status")
    if status == Status.CANCELLED:
        return CancelVerdict.ALREADY
    if status == Status.PENDING:
        return CancelVerdict.CANCEL
    raise Rejected(f"message {message_id!r} is already {status}; it can no longer be cancelled")


def cancel_refusal(winner: LedgerEntry, message_id: str) -> str | None:
    """Why the ledger refused our cancellation (None: the id is cancelled now)."""
    if winner.state is LedgerState.CANCELLED:
        return None
    if winner.state is LedgerState.CLAIMED:
        return f"message {message_id!r} is being sent right now; too late to cancel"
    return f"message {message_id!r} is already {winner.state.value}; it can no longer be cancelled"
