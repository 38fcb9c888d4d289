"""A series over time: which occurrence to send after downtime, and what its entry shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wasched.common.localtime import load_zone
from wasched.common.recurrence import Series, read_series
from wasched.common.series import (
    CATCH_UP_SPAN,
    MISSED,
    CatchUp,
    OccurrenceOutcome,
    catch_up,
    series_fields,
    settled_through,
)

DAY = timedelta(days=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily(rule: str = "FREQ=DAILY", start: str = "2026-01-05T09:00:00") -> Series:
    return read_series(rule, datetime.fromisoformat(start), load_zone("Europe/London"))


MON, TUE, WED, THU = (utc(f"2026-01-0{d}T09:00:00") for d in (5, 6, 7, 8))


@pytest.mark.parametrize(
    ("after", "now", "lateness", "handled", "expected"),
    [
        # Before the first occurrence: nothing to do, the first is next.
        (None, utc("2026-01-05T08:00:00"), DAY, set(), CatchUp(next_at=MON)),
        # On time: the one due occurrence is sent.
        (None, MON + timedelta(seconds=1), DAY, set(), CatchUp(send=MON, next_at=TUE)),
        # Down over three occurrences: only the latest is sent, the two before are missed.
        (
            None,
            WED + timedelta(hours=2),
            DAY,
            set(),
            CatchUp(send=WED, missed=(MON, TUE), missed_count=2, next_at=THU),
        ),
        # The latest is too late as well: expired, like a one-time message.
        (
            None,
            WED + timedelta(hours=2),
            timedelta(hours=1),
            set(),
            CatchUp(expire=WED, missed=(MON, TUE), missed_count=2, next_at=THU),
        ),
        # MAX_LATENESS_SECONDS=0: sent however late, still only one.
        (
            None,
            WED + 5 * DAY,
            None,
            set(),
            CatchUp(
                send=utc("2026-01-12T09:00:00"),
                missed=tuple(MON + n * DAY for n in range(2, 7)),
                missed_count=7,
                next_at=utc("2026-01-13T09:00:00"),
            ),
        ),
        # Monday was settled: counting starts after it.
        (
            MON,
            WED + timedelta(hours=2),
            DAY,
            set(),
            CatchUp(send=WED, missed=(TUE,), missed_count=1, next_at=THU),
        ),
        # The latest is already with the sender (ledger): nothing is sent, earlier ones missed.
        (
            None,
            WED + timedelta(hours=2),
            DAY,
            {WED},
            CatchUp(missed=(MON, TUE), missed_count=2, next_at=THU),
        ),
        # Tuesday was handed over, its outcome not written yet: never called missed.
        (
            None,
            WED + timedelta(hours=2),
            DAY,
            {TUE},
            CatchUp(send=WED, missed=(MON,), missed_count=1, next_at=THU),
        ),
    ],
)
def test_after_downtime_only_the_latest_due_occurrence_may_go_out(
    after: datetime | None,
    now: datetime,
    lateness: timedelta | None,
    handled: set[datetime],
    expected: CatchUp,
) -> None:
    decision = catch_up(daily(), after, now, max_lateness=lateness, handled=handled, keep=5)
    assert decision == expected


def test_a_long_outage_counts_every_missed_occurrence_but_lists_only_the_newest() -> None:
    fast = daily("FREQ=SECONDLY;INTERVAL=5", "2026-01-05T00:00:00Z")
    now = utc("2026-01-06T00:00:00")
    decision = catch_up(fast, None, now, max_lateness=DAY, keep=3)
    assert decision.send == now
    assert decision.missed_count == 17_280  # 00:00:00 … 23:59:55 of the 5th
    assert decision.missed == (
        now - timedelta(seconds=15),
        now - timedelta(seconds=10),
        now - timedelta(seconds=5),
    )
    assert decision.next_at == now + timedelta(seconds=5)


def test_a_series_that_began_long_ago_looks_back_only_over_the_catch_up_span() -> None:
    """A series written today with a first time years back (or back after years down) must
    not make every poll walk every occurrence since then: a minutely one from year 1000 is
    500 million. Only the span is looked at; what lies before it is neither sent nor
    counted."""
    ancient = read_series("FREQ=MINUTELY", utc("1000-01-01T00:00:00"), load_zone("UTC"))
    now = utc("2026-12-24T09:00:00")
    decision = catch_up(ancient, None, now, max_lateness=DAY, keep=2)
    assert decision.send == now
    assert decision.missed_count == CATCH_UP_SPAN // timedelta(minutes=1)
    assert decision.missed == (now - timedelta(minutes=2), now - timedelta(minutes=1))
    assert decision.next_at == now + timedelta(minutes=1)


def test_a_series_that_ended_before_the_catch_up_span_still_ends() -> None:
    """Nothing in the span: its last occurrence is found and expired, so the series ends
    instead of staying pending with nothing to do."""
    old = read_series("FREQ=HOURLY;COUNT=4", utc("2020-01-01T09:00:00"), load_zone("UTC"))
    decision = catch_up(old, None, utc("2026-12-24T09:00:00"), max_lateness=DAY, keep=5)
    assert decision.expire == utc("2020-01-01T12:00:00")
    assert decision.missed_count == 3 and decision.next_at is None


def test_a_finished_series_has_nothing_next() -> None:
    two = daily("FREQ=DAILY;COUNT=2")
    assert catch_up(two, None, WED, max_lateness=DAY) == CatchUp(
        send=TUE, missed=(MON,), missed_count=1, next_at=None
    )
    assert catch_up(two, TUE, WED, max_lateness=DAY) == CatchUp(next_at=None)


def entry(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "bday",
        "to": "447957189696",
        "message": "Happy birthday!",
        "scheduledTime": "2026-01-05T09:00:00.000Z",
        "repeat": "FREQ=DAILY",
        "status": "pending",
    }
    raw.update(fields)
    return raw


def sent(at: datetime, delay: float = 0.2) -> OccurrenceOutcome:
    return OccurrenceOutcome(at=at, status="sent", sent_at=at + timedelta(seconds=delay))


def test_the_first_outcome_writes_history_and_the_next_occurrence() -> None:
    fields = series_fields(entry(), daily(), [sent(MON)])
    assert fields == {
        "history": [
            {
                "at": "2026-01-05T09:00:00.000Z",
                "status": "sent",
                "sentAt": "2026-01-05T09:00:00.200Z",
            }
        ],
        "occurrences": 1,
        "lastStatus": "sent",
        "lastSentAt": "2026-01-05T09:00:00.200Z",
        "nextAt": "2026-01-06T09:00:00.000Z",
    }


def test_without_outcomes_only_next_at_is_written() -> None:
    assert series_fields(entry(), daily()) == {
        "history": [],
        "occurrences": 0,
        "nextAt": "2026-01-05T09:00:00.000Z",
    }


def test_applying_the_same_outcome_again_changes_nothing() -> None:
    raw = entry()
    raw.update(series_fields(raw, daily(), [sent(MON)]))
    assert series_fields(raw, daily(), [sent(MON)]) == {}


def test_a_missed_batch_then_the_sent_latest() -> None:
    raw = entry()
    outcomes = [
        OccurrenceOutcome(at=MON, status=MISSED),
        OccurrenceOutcome(at=TUE, status=MISSED),
        sent(WED),
    ]
    raw.update(series_fields(raw, daily(), outcomes, more_missed=4))
    assert [h["status"] for h in raw["history"]] == ["missed", "missed", "sent"]
    assert raw["occurrences"] == 7
    assert raw["lastStatus"] == "sent"
    assert raw["nextAt"] == "2026-01-08T09:00:00.000Z"
    assert settled_through(raw) == WED


def test_sent_replaces_another_status_of_the_same_occurrence_and_nothing_replaces_sent() -> None:
    raw = entry()
    raw.update(series_fields(raw, daily(), [OccurrenceOutcome(at=MON, status=MISSED)]))
    raw.update(series_fields(raw, daily(), [sent(MON)]))
    assert raw["history"][0]["status"] == "sent"
    assert raw["occurrences"] == 1
    failed = OccurrenceOutcome(at=MON, status="failed", error="x", error_kind="whatsapp_error")
    assert series_fields(raw, daily(), [failed]) == {}


def test_history_keeps_the_newest_and_ignores_outcomes_older_than_all_it_keeps() -> None:
    raw = entry()
    for day in range(6):
        raw.update(series_fields(raw, daily(), [sent(MON + day * DAY)], keep=3))
    assert [h["at"][:10] for h in raw["history"]] == ["2026-01-08", "2026-01-09", "2026-01-10"]
    assert raw["occurrences"] == 6
    assert series_fields(raw, daily(), [sent(MON)], keep=3) == {}  # a redelivered old one


def test_errors_are_kept_short_in_history() -> None:
    failed = OccurrenceOutcome(
        at=MON, status="failed", error="x" * 500, error_kind="media_unavailable"
    )
    item = series_fields(entry(), daily(), [failed])["history"][0]
    assert item["errorKind"] == "media_unavailable"
    assert len(item["error"]) == 200
    assert "sentAt" not in item


def test_the_last_occurrence_ends_the_series_with_its_status() -> None:
    two = daily("FREQ=DAILY;COUNT=2")
    raw = entry(repeat="FREQ=DAILY;COUNT=2")
    raw.update(series_fields(raw, two, [sent(MON)]))
    assert "status" not in series_fields(raw, two)
    ended = series_fields(raw, two, [OccurrenceOutcome(at=TUE, status=MISSED)])
    assert ended["status"] == "expired"
    assert ended["nextAt"] is None


def test_a_cancelled_series_keeps_its_status() -> None:
    two = daily("FREQ=DAILY;COUNT=1")
    raw = entry(status="cancelled")
    fields = series_fields(raw, two, [OccurrenceOutcome(at=MON, status="cancelled")])
    assert "status" not in fields
    assert fields["lastStatus"] == "cancelled"


@pytest.mark.parametrize(
    "history",
    [
        "not a list",
        [1, "x", {"at": "yesterday", "status": "sent"}, {"status": "sent"}],
        [{"at": "2026-01-04T09:00:00.000Z"}],
        None,
    ],
)
def test_unreadable_history_is_replaced(history: object) -> None:
    fields = series_fields(entry(history=history, occurrences="many"), daily(), [sent(MON)])
    assert len(fields["history"]) == 1
    assert fields["occurrences"] == 1
    assert settled_through(entry(history=history)) is None


FIVE = timedelta(seconds=5)
GRACE = timedelta(seconds=60)


def every_five() -> Series:
    return daily("FREQ=SECONDLY;INTERVAL=5", "2026-01-05T09:00:00Z")


T0 = utc("2026-01-05T09:00:00")


@pytest.mark.parametrize(
    ("now", "handled", "lateness", "expected"),
    [
        # A poller restart of 8 s: the occurrence that fell due meanwhile and the one after it
        # are both sent (the first 8 s late), nothing is missed.
        (T0 + 8 * FIVE / 5, set(), DAY, CatchUp(send=T0 + FIVE, late=(T0,), next_at=T0 + 2 * FIVE)),
        # 50 s: every occurrence whose successor fell due within the grace still goes, oldest first.
        (
            T0 + 10 * FIVE,
            set(),
            DAY,
            CatchUp(
                send=T0 + 10 * FIVE,
                late=tuple(T0 + n * FIVE for n in range(10)),
                next_at=T0 + 11 * FIVE,
            ),
        ),
        # Down for 100 s: those whose successor fell due more than the grace ago (before
        # 09:00:40) are missed.
        (
            T0 + 20 * FIVE,
            set(),
            DAY,
            CatchUp(
                send=T0 + 20 * FIVE,
                late=tuple(T0 + n * FIVE for n in range(7, 20)),
                missed=tuple(T0 + n * FIVE for n in range(2, 7)),
                missed_count=7,
                next_at=T0 + 21 * FIVE,
            ),
        ),
        # A late one beyond MAX_LATENESS_SECONDS is missed, not sent.
        (
            T0 + 8 * FIVE / 5,
            set(),
            timedelta(seconds=7),
            CatchUp(send=T0 + FIVE, missed=(T0,), missed_count=1, next_at=T0 + 2 * FIVE),
        ),
        # One the sender already has is neither sent again nor missed.
        (T0 + 8 * FIVE / 5, {T0}, DAY, CatchUp(send=T0 + FIVE, next_at=T0 + 2 * FIVE)),
    ],
)
def test_with_a_grace_a_restart_is_not_downtime(
    now: datetime, handled: set[datetime], lateness: timedelta, expected: CatchUp
) -> None:
    found = catch_up(
        every_five(), None, now, max_lateness=lateness, handled=handled, keep=5, grace=GRACE
    )
    assert found == expected


def test_with_a_grace_a_weekly_series_down_for_weeks_still_sends_only_the_latest() -> None:
    weekly = daily("FREQ=WEEKLY")
    now = MON + timedelta(weeks=3, hours=1)
    found = catch_up(weekly, None, now, max_lateness=DAY, grace=GRACE)
    assert found.send == MON + timedelta(weeks=3)
    assert found.late == ()
    assert found.missed_count == 3
