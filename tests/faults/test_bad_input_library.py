"""Scenario 7, library half: arbitrary bad input against the shared parsing code.

Whatever a writer puts in the schedule, or another system publishes, must end
in a specific error (`DocumentError`, `MessageInvalid`, `TimeFormatError`,
`InvalidRecipient`, pydantic's `ValidationError`) and never in an unhandled
exception that would stop a service's loop. Good input round-trips with every
unknown field intact.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.faults import strategies as bad
from wasched.common.clock import TimeFormatError, format_display, format_utc, parse_utc
from wasched.common.document import (
    DocumentError,
    Patch,
    apply_patches,
    parse_document,
    render_document,
)
from wasched.common.events import (
    CancelRequest,
    DueMessage,
    Outcome,
    Receipt,
    ScheduleRequest,
    SendRequest,
)
from wasched.common.messages import ErrorKind, MessageInvalid, ScheduledMessage, read_message
from wasched.common.recipients import InvalidRecipient, mask, parse_recipient

PROPERTY = settings(  # examples per property: the profile's (tests/conftest.py)
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INBOUND: list[type[BaseModel]] = [
    DueMessage,
    SendRequest,
    ScheduleRequest,
    CancelRequest,
    Outcome,
    Receipt,
]
T = TypeVar("T")


def attempt(call: Callable[[], T], expected: type[Exception]) -> tuple[T | None, Exception | None]:
    """Run `call`; the `expected` error is returned, any other exception propagates (fails)."""
    try:
        return call(), None
    except expected as exc:
        return None, exc


ZONES = [ZoneInfo(z) for z in ("Europe/London", "America/New_York", "Asia/Tokyo", "UTC")]


# --- the stored document ------------------------------------------------------------


@PROPERTY
@given(bad.raw_bodies())
def test_any_stored_bytes_give_a_schedule_or_a_document_error(body: bytes) -> None:
    doc, error = attempt(lambda: parse_document(body), DocumentError)
    if error is not None:
        assert str(error)
        return
    assert doc is not None
    assert all(isinstance(m, dict) for m in doc.messages)


@PROPERTY
@given(bad.truncated())
def test_a_truncated_schedule_is_never_read_as_a_schedule(body: bytes) -> None:
    with pytest.raises(DocumentError, match=r"not valid JSON|not UTF-8"):
        parse_document(body)


NASTY_BODIES = {
    "deeply nested list": b'{"messages": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}",
    "deeply nested field": b'{"messages": [{"id": "a", "meta": '
    + b'{"a": ' * 50_000
    + b"1"
    + b"}" * 50_000
    + b"}]}",
    "5000-digit number": b'{"messages": [], "counter": 1' + b"0" * 5000 + b"}",
    "UTF-16": json.dumps({"messages": []}).encode("utf-16"),
    "NUL bytes": b'{"messages": [\x00]}',
    "top-level list": b'[{"id": "a"}]',
    "messages is an object": b'{"messages": {"id": "a"}}',
    "message is a string": b'{"messages": ["a"]}',
}


@pytest.mark.parametrize("body", NASTY_BODIES.values(), ids=NASTY_BODIES.keys())
def test_nasty_bodies_are_document_errors(body: bytes) -> None:
    with pytest.raises(DocumentError):
        parse_document(body)


@PROPERTY
@given(bad.documents())
def test_every_field_round_trips_unchanged(data: dict[str, Any]) -> None:
    doc = parse_document(json.dumps(data, ensure_ascii=False).encode())
    written = json.loads(render_document(doc))
    assert written == data
    for before, after in zip(data["messages"], written["messages"], strict=True):
        assert list(before) == list(after)  # same key order, too


def test_lone_surrogate_escapes_can_be_written_back() -> None:
    """JSON allows `\\ud83c` escapes (JavaScript writes them for split emoji)."""
    body = b'{"messages": [{"id": "a", "message": "half an emoji \\ud83c", "status": "pending"}]}'
    doc = parse_document(body)
    apply_patches(doc, [Patch("a", {"status": "sent"})])
    written = json.loads(render_document(doc))
    assert written["messages"][0]["message"] == "half an emoji \ud83c"


@PROPERTY
@given(bad.documents())
@example({"messages": [{"id": "a"}, {"id": "a"}, {"id": "a#1"}]})
def test_message_keys_are_unique(data: dict[str, Any]) -> None:
    """Patches are addressed by key; two messages with one key would get each other's outcome."""
    keys = [key for key, _ in parse_document(json.dumps(data).encode()).keyed() if key]
    assert len(keys) == len(set(keys)), keys


@PROPERTY
@given(bad.documents(), st.data())
def test_a_patch_changes_only_its_own_message(data: dict[str, Any], draw: st.DataObject) -> None:
    doc = parse_document(json.dumps(data).encode())
    keyed = [(key, i) for i, (key, _) in enumerate(doc.keyed()) if key]
    if len({k for k, _ in keyed}) != len(keyed):
        return  # key collisions: see test_message_keys_are_unique
    chosen = draw.draw(st.lists(st.sampled_from(keyed), unique=True) if keyed else st.just([]))
    before = copy.deepcopy(doc.messages)
    fields = {"status": "sent", "sentAt": "2025-12-24T10:00:01.020Z"}
    result = apply_patches(doc, [Patch(key, fields) for key, _ in chosen])
    touched = {index for _, index in chosen}
    for index, (old, new) in enumerate(zip(before, doc.messages, strict=True)):
        if index not in touched:
            assert list(old.items()) == list(new.items())
            continue
        assert {**old, **fields} == new
        assert list(new)[: len(old)] == list(old)  # existing fields keep their place
    assert set(result.changed) | set(result.unchanged) == {key for key, _ in chosen}


# --- one message ----------------------------------------------------------------------


@PROPERTY
@given(bad.messages())
@example({**bad.GOOD_MESSAGE, "scheduledTime": "9999-12-31T23:59:59-01:00"})
@example({**bad.GOOD_MESSAGE, "expiresAt": "0001-01-01T00:00:00+01:00"})
def test_read_message_accepts_or_names_the_problem(raw: dict[str, Any]) -> None:
    message, error = attempt(lambda: read_message(raw), MessageInvalid)
    if isinstance(error, MessageInvalid):
        assert isinstance(error.kind, ErrorKind)
        assert error.reason.strip()
        return
    assert isinstance(message, ScheduledMessage)
    assert message.scheduled_time.utcoffset() == timedelta(0)
    assert message.text == raw["message"]
    assert parse_recipient(message.recipient.jid) == message.recipient


@PROPERTY
@given(bad.times() | bad.json_values(3))
@example("9999-12-31T23:59:59-01:00")
@example("0001-01-01T00:00:00+01:00")
def test_parse_utc_returns_utc_or_a_time_format_error(value: object) -> None:
    moment, error = attempt(lambda: parse_utc(value), TimeFormatError)
    if error is not None:
        assert str(error)
        return
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)


@PROPERTY
@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
@example(datetime(999, 1, 1, 12))
@example(datetime(2000, 1, 1, 0, 0, 0, 1))
def test_the_stored_time_format_reads_back(naive: datetime) -> None:
    """Within the storable years the stored form (JavaScript's `toISOString()`) reads back to
    the millisecond; outside, it is refused by name."""
    moment = naive.replace(tzinfo=UTC)
    if 1000 <= moment.year <= 9999:
        assert parse_utc(format_utc(moment)) == moment.replace(
            microsecond=moment.microsecond // 1000 * 1000
        )
    else:
        with pytest.raises(TimeFormatError, match="out of range"):
            parse_utc(format_utc(moment))


@PROPERTY
@given(bad.times(), st.sampled_from(ZONES))
@example("0001-01-01T00:00:00Z", ZoneInfo("Europe/London"))
@example("9999-12-31T23:59:59Z", ZoneInfo("Asia/Tokyo"))
def test_any_readable_time_can_be_shown_in_the_display_zone(value: str, zone: ZoneInfo) -> None:
    """Logs show `scheduledTime` in DISPLAY_TIMEZONE; a valid but extreme time must not crash them."""
    try:
        moment = parse_utc(value)
    except (TimeFormatError, OverflowError):
        return
    assert format_display(moment, zone)


@PROPERTY
@given(
    bad.odd_text()
    | st.from_regex(r"(\+|00)?[0-9 ().\-]{0,24}", fullmatch=True)
    | st.from_regex(r"[0-9]{1,20}(-[0-9]{1,12})?(:[0-9]{1,3})?@[a-z.]{1,16}", fullmatch=True)
    | bad.json_values(2)
)
def test_parse_recipient_normalises_or_says_why(to: object) -> None:
    recipient, error = attempt(lambda: parse_recipient(to), InvalidRecipient)
    if error is not None:
        assert str(error)
        return
    assert recipient is not None
    assert parse_recipient(recipient.jid) == recipient
    assert mask(recipient.jid).startswith("…")
    if recipient.e164:
        assert parse_recipient(recipient.e164) == recipient


# --- events on the inbound subjects ------------------------------------------------------


@PROPERTY
@given(bad.event_payloads(), st.sampled_from(INBOUND))
def test_any_payload_is_an_event_or_a_validation_error(
    payload: bytes, model: type[BaseModel]
) -> None:
    event, error = attempt(lambda: model.model_validate_json(payload), ValidationError)
    if isinstance(error, ValidationError):
        assert error.errors()
        return
    assert event is not None
    again = model.model_validate_json(event.to_json())  # type: ignore[attr-defined]
    # null-valued unknown fields: see test_schedule_request_keeps_unknown_fields_through_the_wire
    assert again.model_dump(exclude_none=True) == event.model_dump(exclude_none=True)


@PROPERTY
@given(bad.event_payloads(), st.sampled_from([DueMessage, ScheduleRequest]))
@example(
    json.dumps({**bad.GOOD_MESSAGE, "scheduledTime": "9999-12-31T23:59:59-01:00"}).encode(),
    ScheduleRequest,
)
@example(
    json.dumps({**bad.GOOD_MESSAGE, "scheduledTime": "0999-06-01T00:00:00Z"}).encode(),
    ScheduleRequest,
)
def test_an_accepted_time_can_be_stored_and_read_back(
    payload: bytes, model: type[DueMessage] | type[ScheduleRequest]
) -> None:
    """The poller stores a `wasched.schedule` request's time with `format_utc` (to the
    millisecond, as JavaScript's `toISOString()` does)."""
    try:
        event = model.model_validate_json(payload)
    except ValidationError:
        return
    for moment in (event.scheduled_time, event.expires_at):
        if moment is not None:
            exact = parse_utc(moment.isoformat())
            to_the_ms = exact.replace(microsecond=exact.microsecond // 1000 * 1000)
            assert parse_utc(format_utc(moment)) == to_the_ms


@PROPERTY
@given(bad.messages(), st.sampled_from(INBOUND))
def test_any_object_is_an_event_or_a_validation_error(
    raw: dict[str, Any], model: type[BaseModel]
) -> None:
    _, error = attempt(lambda: model.model_validate(raw), ValidationError)
    if isinstance(error, ValidationError):
        assert error.errors()


@PROPERTY
@given(st.dictionaries(bad.odd_text(12), bad.json_values(3), max_size=4))
def test_schedule_request_keeps_unknown_fields_through_the_wire(extra: dict[str, Any]) -> None:
    base = {k: bad.GOOD_MESSAGE[k] for k in ("id", "to", "message", "scheduledTime")}
    known = set(ScheduleRequest.model_fields) | {
        f.alias for f in ScheduleRequest.model_fields.values() if f.alias
    }
    extra = {k: v for k, v in extra.items() if k not in known}
    request = ScheduleRequest.model_validate({**base, **extra})
    wire = json.loads(request.to_json())
    assert {k: wire.get(k, "<dropped>") for k in extra} == extra
