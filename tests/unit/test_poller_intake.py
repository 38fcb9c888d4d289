"""Requests from other systems: each refusal says exactly what is wrong."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from wasched.common.document import Document
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.poller.intake import (
    Admission,
    CancelVerdict,
    Rejected,
    admit,
    cancel_refusal,
    cancel_verdict,
    new_message,
    parse_cancel,
    parse_schedule,
)

NOW = datetime(2025, 12, 22, 22, 15, tzinfo=UTC)


def request(**fields: Any) -> bytes:
    body = {
        "id": "r1",
        "to": "+44 7957 189696",
        "message": "Happy Birthday!",
        "scheduledTime": "2025-12-24T10:00:00Z",
    }
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def stored(**fields: Any) -> dict[str, Any]:
    return new_message(parse_schedule(request(**fields)), NOW)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "invalid schedule request: Invalid JSON"),
        (b"[]", "invalid schedule request: Input should be an object"),
        (request(id=None), "invalid schedule request: id: Field required"),
        (
            request(scheduledTime="2025-12-24T10:00:00"),
            "invalid schedule request: scheduledTime: '2025-12-24T10:00:00' has no time zone; "
            "add a timezone field",
        ),
        (request(message=" "), "message: message text is empty"),
        (request(to=""), "to: String should have at least 1 character"),
        (
            request(scheduledTime="9999-12-31T23:59:59-01:00"),
            "scheduledTime: time '9999-12-31T23:59:59-01:00' is out of range",
        ),
    ],
)
def test_malformed_schedule_requests(body: bytes, error: str) -> None:
    with pytest.raises(Rejected) as caught:
        new_message(parse_schedule(body), NOW)
    assert error in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"to": "12"}, "message 'r1': not a phone number"),
        ({"status": "sent"}, "message 'r1': status must be pending or left out, got 'sent'"),
        ({"sentAt": "2025-12-24T10:00:00Z"}, "message 'r1': sentAt is set by wasched"),
    ],
)
def test_schedule_requests_that_cannot_be_valid(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(Rejected, match=error):
        stored(**fields)


def test_new_message_has_the_stored_shape_and_keeps_extra_fields() -> None:
    body = json.loads(request(contactName="Reem", webUiColour="blue"))
    body.update(sentAt=None, error=None)
    raw = new_message(parse_schedule(json.dumps(body).encode()), NOW)
    assert raw == {
        "id": "r1",
        "to": "+44 7957 189696",
        "contactName": "Reem",
        "message": "Happy Birthday!",
        "scheduledTime": "2025-12-24T10:00:00.000Z",
        "status": "pending",
        "createdAt": "2025-12-22T22:15:00.000Z",
        "createdFrom": "nats",
        "webUiColour": "blue",
        "sentAt": None,
        "error": None,
    }


def test_same_id_same_content_is_a_no_op_even_at_another_time() -> None:
    doc = Document(messages=[stored()])
    again = new_message(parse_schedule(request()), NOW.replace(hour=23))
    assert admit(doc, again, None) is Admission.SAME
    same_instant = stored(scheduledTime="2025-12-24T11:00:00+01:00")
    assert admit(doc, same_instant, None) is Admission.SAME


def test_same_id_other_content_is_refused_naming_id_and_fields() -> None:
    doc = Document(messages=[stored()])
    with pytest.raises(Rejected) as caught:
        admit(doc, stored(message="Other text", scheduledTime="2025-12-25T10:00:00Z"), None)
    assert str(caught.value) == (
        "id 'r1' is already in the schedule with different message, scheduledTime; use a new id"
    )


def test_an_id_the_ledger_knows_is_never_reused() -> None:
    with pytest.raises(Rejected, match="id 'r1' was used before"):
        admit(Document(messages=[]), stored(), LedgerEntry(state=LedgerState.SENT))
    assert admit(Document(messages=[]), stored(), None) is Admission.ADD


@pytest.mark.parametrize(
    ("raw", "verdict", "error"),
    [
        ({"id": "a", "status": "pending"}, CancelVerdict.CANCEL, None),
        ({"id": "a", "status": "cancelled"}, CancelVerdict.ALREADY, None),
        ({"id": "a", "status": "sent"}, None, "message 'a' is already sent"),
        (None, None, "no message with id 'a' in the schedule"),
    ],
)
def test_cancel_verdicts(
    raw: dict[str, Any] | None, verdict: CancelVerdict | None, error: str | None
) -> None:
    if error is None:
        assert cancel_verdict(raw, "a") is verdict
    else:
        with pytest.raises(Rejected, match=error):
            cancel_verdict(raw, "a")


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        (LedgerState.CANCELLED, None),
        (LedgerState.CLAIMED, "message 'a' is being sent right now; too late to cancel"),
        (LedgerState.SENT, "message 'a' is already sent; it can no longer be cancelled"),
    ],
)
def test_cancel_refusals_from_the_ledger(state: LedgerState, refusal: str | None) -> None:
    assert cancel_refusal(LedgerEntry(state=state), "a") == refusal


def test_malformed_cancel() -> None:
    with pytest.raises(Rejected, match="invalid cancel request: id: Field required"):
        parse_cancel(b"{}")


def test_a_wall_time_with_a_timezone_is_stored_as_written_and_read_there() -> None:
    raw = stored(
        scheduledTime="2026-03-29T01:30:00",
        timezone="Europe/London",
        repeat="FREQ=YEARLY",
        skip=["2027-03-28"],
    )
    assert raw["scheduledTime"] == "2026-03-29T01:30:00"
    assert (raw["timezone"], raw["repeat"], raw["skip"]) == (
        "Europe/London",
        "FREQ=YEARLY",
        ["2027-03-28"],
    )
    assert (
        admit(
            Document(messages=[raw]),
            stored(**{k: raw[k] for k in ("scheduledTime", "timezone", "repeat", "skip")}),
            None,
        )
        is Admission.SAME
    )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"repeat": "FREQ=WEEKLY;BYDAY=XX"}, "message 'r1': repeat: BYDAY: expected weekdays"),
        ({"repeat": "0 9 * * 1"}, "looks like a cron expression"),
        (
            {"scheduledTime": "2026-12-24T09:00:00", "timezone": "europe/london"},
            "timezone: unknown time zone 'europe/london'; did you mean 'Europe/London'?",
        ),
        (
            {"media": {"type": "image", "url": "ftp://example.org/card.jpg"}},
            "media.url: must start with http:// or https://",
        ),
        ({"media": {"type": "image"}}, "media"),
        ({"skip": ["2026-12-28"]}, "skip: only a repeating message"),
        ({"id": "bins@20261224T090000Z"}, "has the form wasched gives the occurrences"),
        ({"history": []}, "history is set by wasched"),
        ({"nextAt": "2026-12-24T09:00:00.000Z"}, "nextAt is set by wasched"),
    ],
)
def test_new_fields_are_checked_at_intake_with_a_clear_reason(
    fields: dict[str, Any], error: str
) -> None:
    with pytest.raises(Rejected, match=re.escape(error)):
        stored(**fields)
