"""Outcomes of a series' occurrences land in the series' one entry (inside the write, against
the document as it is then); a series' own notes (missed, nextAt) too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from wasched.common.document import Document
from wasched.common.events import Outcome, Receipt
from wasched.common.messages import ErrorKind, Status
from wasched.common.recurrence import occurrence_id
from wasched.common.series import OccurrenceOutcome
from wasched.poller.history import SeriesNote
from wasched.poller.merge import apply_events

MON = datetime(2026, 1, 5, 9, tzinfo=UTC)
DAY = timedelta(days=1)
LONDON = ZoneInfo("Europe/London")


def bins(**fields: Any) -> dict[str, Any]:
    raw = {
        "id": "bins",
        "to": "447957189696",
        "message": "Bins out",
        "scheduledTime": "2026-01-05T09:00:00",
        "timezone": "Europe/London",
        "repeat": "FREQ=DAILY;COUNT=3",
        "status": "pending",
        "labels": ["house"],
    }
    raw.update(fields)
    return raw


def sent(day: int) -> Outcome:
    at = MON + day * DAY
    return Outcome(
        id=occurrence_id("bins", at),
        status=Status.SENT,
        at=at + timedelta(seconds=1),
        sent_at=at + timedelta(seconds=1),
        wa_message_id="WA1",
    )


def test_an_occurrence_outcome_writes_the_series_story_not_a_status() -> None:
    doc = Document(messages=[bins()])
    result = apply_events(doc, [sent(0)], zone=LONDON)
    assert result.changed == ["bins"]
    entry = doc.messages[0]
    assert entry["status"] == "pending"
    assert "sentAt" not in entry and "waMessageId" not in entry
    assert entry["history"] == [
        {"at": "2026-01-05T09:00:00.000Z", "status": "sent", "sentAt": "2026-01-05T09:00:01.000Z"}
    ]
    assert (entry["occurrences"], entry["lastStatus"]) == (1, "sent")
    assert entry["lastSentAt"] == "2026-01-05T09:00:01.000Z"
    assert entry["nextAt"] == "2026-01-06T09:00:00.000Z"
    assert entry["labels"] == ["house"]
    assert apply_events(doc, [sent(0)], zone=LONDON).changed == []  # redelivered: nothing new


def test_the_last_occurrence_ends_the_series_with_its_status() -> None:
    doc = Document(messages=[bins()])
    failed = Outcome(
        id=occurrence_id("bins", MON + 2 * DAY),
        status=Status.FAILED,
        error="not on WhatsApp",
        error_kind=ErrorKind.NOT_ON_WHATSAPP,
    )
    apply_events(doc, [sent(0), sent(1), failed], zone=LONDON)
    entry = doc.messages[0]
    assert (entry["status"], entry["nextAt"], entry["occurrences"]) == ("failed", None, 3)
    assert entry["history"][-1] == {
        "at": "2026-01-07T09:00:00.000Z",
        "status": "failed",
        "errorKind": "not_on_whatsapp",
        "error": "not on WhatsApp",
    }


def test_missed_occurrences_and_next_at_come_from_the_pollers_own_note() -> None:
    doc = Document(messages=[bins(repeat="FREQ=DAILY")])
    missed = tuple(OccurrenceOutcome(at=MON + n * DAY, status="missed") for n in range(2))
    apply_events(doc, [SeriesNote("bins", missed, more_missed=5), sent(2)], zone=LONDON)
    entry = doc.messages[0]
    assert [h["status"] for h in entry["history"]] == ["missed", "missed", "sent"]
    assert entry["occurrences"] == 8
    refresh = Document(messages=[bins()])
    apply_events(refresh, [SeriesNote("bins")], zone=LONDON)
    assert refresh.messages[0]["nextAt"] == "2026-01-05T09:00:00.000Z"


def test_receipts_of_occurrences_stay_in_the_ledger() -> None:
    doc = Document(messages=[bins()])
    receipt = Receipt(id=occurrence_id("bins", MON), kind="delivered", at=MON + DAY)
    result = apply_events(doc, [receipt], zone=LONDON)
    assert result.changed == [] and result.missing == []
    assert "deliveredAt" not in doc.messages[0]


def test_a_one_time_message_with_such_an_id_is_not_written_when_the_series_is_there() -> None:
    lookalike = {**bins(), "id": occurrence_id("bins", MON)}
    lookalike.pop("repeat")
    doc = Document(messages=[bins(), lookalike])
    apply_events(doc, [sent(0)], zone=LONDON)
    assert doc.messages[1].get("status") == "pending"
    assert doc.messages[0]["occurrences"] == 1
    alone = Document(messages=[dict(lookalike)])  # no such series: an ordinary outcome
    apply_events(alone, [sent(0)], zone=LONDON)
    assert alone.messages[0]["status"] == "sent"


def test_an_outcome_for_a_series_no_longer_readable_is_reported_missing() -> None:
    doc = Document(messages=[bins(repeat="FREQ=NEVER")])
    result = apply_events(doc, [sent(0)], zone=LONDON)
    assert result.missing == [occurrence_id("bins", MON)]
    assert "history" not in doc.messages[0]
