"""Outcomes and receipts written into the document: what changes, what must not."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from wasched.common.document import Document
from wasched.common.events import Outcome, Receipt
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.poller.merge import apply_events, vouch

AT = datetime(2025, 12, 24, 10, 0, 2, 311000, tzinfo=UTC)


def message(ident: str, status: str = "pending", **fields: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "to": "447957189696",
        "contactName": "Reem",
        "message": "Happy Birthday!",
        "scheduledTime": "2025-12-24T10:00:00.000Z",
        "status": status,
        "createdAt": "2025-12-22T22:15:00.000Z",
        "createdFrom": "web",
        "sentAt": None,
        "error": None,
        "webUiColour": "blue",
        **fields,
    }


def sent(ident: str = "a") -> Outcome:
    return Outcome(id=ident, status=Status.SENT, at=AT, sent_at=AT, wa_message_id="3EB0ABC")


def failed(ident: str = "a", kind: ErrorKind = ErrorKind.NOT_ON_WHATSAPP) -> Outcome:
    return Outcome(id=ident, status=Status.FAILED, at=AT, error="not on WhatsApp", error_kind=kind)


def test_sent_outcome_sets_status_time_and_whatsapp_id_only() -> None:
    doc = Document(messages=[message("a"), message("b")])
    untouched = copy.deepcopy(doc.messages[1])
    result = apply_events(doc, [sent()])
    assert result.changed == ["a"]
    assert doc.messages[0] == {
        **message("a"),
        "status": "sent",
        "sentAt": "2025-12-24T10:00:02.311Z",
        "waMessageId": "3EB0ABC",
    }
    assert doc.messages[1] == untouched


@pytest.mark.parametrize(
    ("stored", "event", "expected_status", "changed"),
    [
        ("pending", failed(), "failed", True),
        ("sent", failed(), "sent", False),  # a stale failure never undoes a send
        ("cancelled", failed(), "cancelled", False),
        ("expired", sent(), "sent", True),  # a send is the truth, whatever the document says
        ("failed", sent(), "sent", True),
        ("pending", Outcome(id="a", status=Status.EXPIRED, at=AT, error="late"), "expired", True),
        ("sent", Outcome(id="a", status=Status.CANCELLED, at=AT), "sent", False),
    ],
)
def test_guards_against_stale_outcomes(
    stored: str, event: Outcome, expected_status: str, changed: bool
) -> None:
    doc = Document(messages=[message("a", stored)])
    result = apply_events(doc, [event])
    assert doc.messages[0]["status"] == expected_status
    assert bool(result) is changed


def test_failure_records_reason_and_kind() -> None:
    doc = Document(messages=[message("a")])
    apply_events(doc, [failed()])
    assert doc.messages[0]["error"] == "not on WhatsApp"
    assert doc.messages[0]["errorKind"] == "not_on_whatsapp"


def test_send_after_interrupted_clears_the_error() -> None:
    doc = Document(messages=[message("a", "failed", error="interrupted", errorKind="interrupted")])
    apply_events(doc, [sent()])
    assert doc.messages[0]["status"] == "sent"
    assert doc.messages[0]["error"] is None
    assert doc.messages[0]["errorKind"] is None


def test_outcome_for_a_deleted_message_is_reported_missing() -> None:
    doc = Document(messages=[message("a")])
    result = apply_events(doc, [sent("gone")])
    assert result.missing == ["gone"]
    assert not result
    assert doc.messages == [message("a")]


def test_same_outcome_twice_is_unchanged() -> None:
    doc = Document(messages=[message("a")])
    apply_events(doc, [sent()])
    again = apply_events(doc, [sent()])
    assert not again
    assert again.unchanged == ["a"]


def test_receipts_fill_times_once_and_follow_their_outcome_in_one_batch() -> None:
    doc = Document(messages=[message("a")])
    delivered = Receipt(id="a", kind="delivered", at=AT)
    read = Receipt(id="a", kind="read", at=AT.replace(second=9))
    apply_events(doc, [delivered, read, sent()])  # receipts first in the batch
    assert doc.messages[0]["status"] == "sent"
    assert doc.messages[0]["deliveredAt"] == "2025-12-24T10:00:02.311Z"
    assert doc.messages[0]["readAt"] == "2025-12-24T10:00:09.311Z"
    later = Receipt(id="a", kind="delivered", at=AT.replace(minute=5))
    assert not apply_events(doc, [later])
    assert doc.messages[0]["deliveredAt"] == "2025-12-24T10:00:02.311Z"


def test_repeated_id_is_addressed_by_its_key() -> None:
    doc = Document(messages=[message("x", "sent"), message("x")])
    apply_events(doc, [failed("x#1", ErrorKind.VALIDATION)])
    assert [m["status"] for m in doc.messages] == ["sent", "failed"]


@pytest.mark.parametrize(
    ("event", "ledger", "expected"),
    [
        (sent(), None, None),  # a stray "sent" with no send behind it
        (Receipt(id="a", kind="read", at=AT), None, None),
        (sent(), LedgerEntry(state=LedgerState.SENT), "sent"),
        (sent(), LedgerEntry(state=LedgerState.CLAIMED), "sent"),  # the sender settles next
        (failed(), LedgerEntry(state=LedgerState.FAILED), "failed"),
        (failed(), LedgerEntry(state=LedgerState.SENT), "sent"),  # the ledger is the truth
        (sent(), LedgerEntry(state=LedgerState.CANCELLED), "cancelled"),
        (Receipt(id="a", kind="read", at=AT), LedgerEntry(state=LedgerState.SENT), "read"),
        (Receipt(id="a", kind="read", at=AT), LedgerEntry(state=LedgerState.EXPIRED), None),
    ],
)
def test_only_what_the_ledger_backs_is_written(
    event: Outcome | Receipt, ledger: LedgerEntry | None, expected: str | None
) -> None:
    found = vouch(event, ledger)
    if expected is None:
        assert found is None
    elif isinstance(found, Receipt):
        assert found.kind == expected
    else:
        assert found is not None and found.status.value == expected


def test_vouch_fills_in_the_version_the_ledger_knows() -> None:
    claimed = LedgerEntry(state=LedgerState.SENT, version="0123456789abcdef")
    found = vouch(sent(), claimed)
    assert isinstance(found, Outcome) and found.version == "0123456789abcdef"
    gate = LedgerEntry(state=LedgerState.SUPERSEDED, version=None)
    assert vouch(sent(), gate) is None  # a gate records no outcome: nothing to write


OLD = "0123456789abcdef"
WHAT_WENT = {
    "version": OLD,
    "to": "447957189696",
    "message": "Happy Birthday!",
    "scheduledTime": "2025-12-24T10:00:00.000Z",
}


def test_a_send_of_an_earlier_version_says_what_was_sent_and_keeps_the_edit() -> None:
    edited = message("a", message="Happy Birthday, Reem!")
    doc = Document(messages=[edited])
    outcome = sent().model_copy(update={"version": OLD})
    apply_events(doc, [outcome], sent_as={"a": WHAT_WENT})
    stored = doc.messages[0]
    assert stored["message"] == "Happy Birthday, Reem!"
    assert (stored["status"], stored["sentAs"]) == ("sent", WHAT_WENT)


def test_a_send_of_an_unknown_earlier_version_still_names_it() -> None:
    doc = Document(messages=[message("a", message="edited")])
    apply_events(doc, [sent().model_copy(update={"version": OLD})])
    assert doc.messages[0]["sentAs"] == {"version": OLD}


def test_a_send_of_the_current_version_adds_nothing_more() -> None:
    from wasched.common.messages import content_version

    doc = Document(messages=[message("a")])
    current = content_version(doc.messages[0])
    apply_events(doc, [sent().model_copy(update={"version": current})], sent_as={"a": WHAT_WENT})
    assert "sentAs" not in doc.messages[0]


def test_a_rejection_of_an_earlier_version_is_not_written_over_the_correction() -> None:
    doc = Document(messages=[message("a", to="447700900123")])
    result = apply_events(doc, [failed().model_copy(update={"version": OLD})])
    assert doc.messages[0]["status"] == "pending"  # the next poll reopens it
    assert result.skipped == ["a"]
