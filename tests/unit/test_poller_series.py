"""The poller's decisions for repeating messages, as tables: one series + what is known of
its occurrences + `now` → steps for occurrence ids. No servers, `now` fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wasched.common.clock import format_utc
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, content_version
from wasched.common.recurrence import occurrence_id
from wasched.poller.occurrences import Known
from wasched.poller.plan import Action, Gate, HandOver, Limits
from wasched.poller.recurring import SCHEDULED_AHEAD, decide_fire, decide_series

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
FIVE = timedelta(seconds=5)
LIMITS = Limits(
    horizon=timedelta(hours=1), max_lateness=timedelta(days=1), grace=timedelta(seconds=60)
)


def series(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "s",
        "to": "447957189696",
        "message": "Bins out",
        "scheduledTime": format_utc(T0),
        "repeat": "FREQ=SECONDLY;INTERVAL=5;COUNT=30",
        "status": "pending",
    }
    raw.update(fields)
    return raw


V = content_version(series())


def oid(n: int) -> str:
    return occurrence_id("s", T0 + n * FIVE)


def at(n: int, extra: float = 0.0) -> datetime:
    return T0 + n * FIVE + timedelta(seconds=extra)


def claimed(n: int, age: timedelta = timedelta(seconds=1)) -> LedgerEntry:
    return LedgerEntry(state=LedgerState.CLAIMED, at=at(n) + age, version=V)


def sent(n: int) -> LedgerEntry:
    return LedgerEntry(state=LedgerState.SENT, at=at(n, 0.2), sent_at=at(n, 0.2), version=V)


def steps(
    raw: dict[str, Any] | None = None, known: Known | None = None, now: datetime = T0
) -> list[tuple[str, str]]:
    decision = decide_series("s", raw or series(), None, known or Known(), now=now, limits=LIMITS)
    return [(s.action.value, s.key) for s in decision.steps]


def of(action: Action, found: list[tuple[str, str]]) -> list[str]:
    return [key for kind, key in found if kind == action.value]


def test_a_new_series_schedules_its_next_occurrences_and_writes_next_at() -> None:
    found = steps(now=at(0, -1))
    assert of(Action.SCHEDULE, found) == [oid(n) for n in range(SCHEDULED_AHEAD)]
    assert of(Action.NOTE, found) == ["s"]
    decision = decide_series("s", series(), None, Known(), now=at(0, -1), limits=LIMITS)
    assert decision.next_at == T0
    assert decision.changes_at == T0  # when it falls due, its fire hands it over
    note = next(s for s in decision.steps if s.action is Action.NOTE).note
    assert note is not None and note.outcomes == ()


def test_each_occurrence_is_handed_over_as_a_message_of_its_own() -> None:
    decision = decide_series("s", series(), None, Known(), now=at(0, 0.2), limits=LIMITS)
    first = decision.steps[0]
    assert (first.action, first.key) == (Action.DISPATCH, oid(0))
    due = first.due_message()
    assert (due.id, due.scheduled_time, due.version) == (oid(0), T0, V)
    assert (due.to, due.message) == ("447957189696", "Bins out")
    schedule = decision.steps[1]
    assert (schedule.action, schedule.key, schedule.at) == (Action.SCHEDULE, oid(1), at(1))
    assert schedule.due_message().scheduled_time == at(1)


def test_an_occurrence_whose_schedule_did_not_fire_in_time_is_handed_over_by_the_poll() -> None:
    known = Known(scheduled=frozenset({at(0)}))
    late = at(0) + LIMITS.fire_grace
    decision = decide_series("s", series(), None, known, now=late, limits=LIMITS)
    assert [s.action for s in decision.steps if s.key == oid(0)] == [Action.DISPATCH]
    waiting = decide_series("s", series(), None, known, now=at(0, 0.2), limits=LIMITS)
    assert [s.action for s in waiting.steps if s.key == oid(0)] == [Action.SCHEDULE]
    assert waiting.changes_at == late  # decided again when the schedule is overdue


@pytest.mark.parametrize(
    ("known", "fired", "action", "gate"),
    [
        # its schedule exists and has not fired: left to it (the fire re-reads the document)
        (Known(scheduled=frozenset({at(0)})), frozenset(), Action.SCHEDULE, None),
        # its schedule fired: handed over now
        (Known(scheduled=frozenset({at(0)})), frozenset({at(0)}), Action.DISPATCH, None),
        # with the sender: wait for its outcome
        (Known(handed={at(0): HandOver(V)}), frozenset(), Action.HOLD, None),
        (Known(ledger={at(0): claimed(0)}), frozenset(), Action.HOLD, None),
        # a claim with no outcome for 10 minutes: interrupted
        (Known(ledger={at(0): claimed(0, timedelta(minutes=-11))}), frozenset(), None, None),
        # the series changed after the hand-over: the gate moves, the new text goes out
        (
            Known(handed={at(0): HandOver("0123456789abcdef")}),
            frozenset(),
            Action.DISPATCH,
            Gate.SUPERSEDE,
        ),
        # a gate refused the hand-over for a while: handed over again
        (
            Known(
                ledger={at(0): LedgerEntry(state=LedgerState.SUPERSEDED, version=V)},
                handed={at(0): HandOver(V, regated=True)},
            ),
            frozenset(),
            Action.DISPATCH,
            None,
        ),
        # settled: never again; into the entry, and the book forgets it
        (
            Known(ledger={at(0): sent(0)}, handed={at(0): HandOver(V)}),
            frozenset(),
            (Action.RESTORE, Action.DROP),
            None,
        ),
    ],
    ids=[
        "left-to-fire",
        "fired",
        "handed",
        "claimed",
        "stale-claim",
        "edited",
        "regated",
        "settled",
    ],
)
def test_an_occurrence_like_a_one_time_message(
    known: Known,
    fired: frozenset[datetime],
    action: Action | tuple[Action, ...] | None,
    gate: Gate | None,
) -> None:
    decision = decide_series("s", series(), None, known, fired=fired, now=at(0, 0.2), limits=LIMITS)
    mine = [s for s in decision.steps if s.key == oid(0)]
    if action is None:
        assert [s.action for s in mine] == [Action.INTERRUPT]
        return
    actions = action if isinstance(action, tuple) else (action,)
    assert [(s.action, s.gate) for s in mine] == [(a, gate) for a in actions]


def test_a_stale_claim_becomes_interrupted_for_its_occurrence() -> None:
    stale = LedgerEntry(state=LedgerState.CLAIMED, at=at(0) - timedelta(minutes=11), version=V)
    decision = decide_series(
        "s", series(), None, Known(ledger={at(0): stale}), now=at(0, 1), limits=LIMITS
    )
    step = next(s for s in decision.steps if s.key == oid(0))
    assert step.action is Action.INTERRUPT
    assert step.outcome is not None and step.outcome.error_kind is ErrorKind.INTERRUPTED


def test_an_occurrence_skipped_after_its_hand_over_is_withdrawn() -> None:
    raw = series(skip=[format_utc(at(0))])
    found = steps(raw, Known(handed={at(0): HandOver(content_version(raw))}), now=at(0, 1))
    assert of(Action.WITHDRAW, found) == [oid(0)]
    gated = Known(
        ledger={at(0): LedgerEntry(state=LedgerState.SUPERSEDED, version=None)},
        handed={at(0): HandOver(content_version(raw), regated=True)},
    )
    assert of(Action.WITHDRAW, steps(raw, gated, now=at(0, 2))) == []  # once is enough


def test_a_rule_moved_away_from_a_scheduled_occurrence_removes_that_schedule() -> None:
    raw = series(scheduledTime=format_utc(T0 + timedelta(seconds=2)))
    found = steps(raw, Known(scheduled=frozenset({at(1), at(2)})), now=at(0, -1))
    assert set(of(Action.DROP, found)) == {oid(1), oid(2)}


def test_after_a_restart_what_fell_due_meanwhile_goes_late_oldest_first() -> None:
    found = steps(now=at(1, 3))  # the poller was away from 09:00:00 to 09:00:08
    assert of(Action.DISPATCH, found) == [oid(0), oid(1)]
    assert of(Action.NOTE, found) == ["s"]


def test_after_downtime_the_latest_goes_and_the_earlier_are_missed() -> None:
    decision = decide_series("s", series(), None, Known(), now=at(20, 1), limits=LIMITS)
    sent_now = [s.key for s in decision.steps if s.action is Action.DISPATCH]
    assert sent_now[-1] == oid(20)
    assert len(sent_now) == 13  # those whose successor fell due within the 60 s grace
    note = next(s for s in decision.steps if s.action is Action.NOTE).note
    assert note is not None
    assert [o.status for o in note.outcomes] == ["missed"] * len(note.outcomes)
    assert len(note.outcomes) + note.more_missed == 8


def test_one_still_with_the_sender_when_the_next_is_long_due_is_expired_not_sent() -> None:
    known = Known(handed={at(0): HandOver(V)})
    decision = decide_series("s", series(), None, known, now=at(14, 1), limits=LIMITS)
    mine = next(s for s in decision.steps if s.key == oid(0))
    assert mine.action is Action.EXPIRE
    assert mine.outcome is not None and "never sends a burst" in (mine.outcome.error or "")


def test_a_settled_occurrence_missing_from_history_is_restored_into_the_entry() -> None:
    known = Known(ledger={at(0): sent(0)})
    decision = decide_series("s", series(), None, known, now=at(0, 2), limits=LIMITS)
    restore = next(s for s in decision.steps if s.action is Action.RESTORE)
    assert restore.key == oid(0) and restore.outcome is not None
    history = [{"at": format_utc(at(0)), "status": "sent", "sentAt": format_utc(at(0, 0.2))}]
    again = decide_series("s", series(history=history), None, known, now=at(0, 2), limits=LIMITS)
    assert not [s for s in again.steps if s.action is Action.RESTORE]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"repeat": "FREQ=WEEKLY;BYDAY=XX"}, "repeat: BYDAY"),
        ({"timezone": "europe/london"}, "did you mean 'Europe/London'"),
        ({"expiresAt": format_utc(T0 + timedelta(days=1))}, "expiresAt: a repeating message"),
        ({"skip": "2026-01-05"}, "skip: expected a list"),
    ],
)
def test_a_series_that_cannot_be_read_is_rejected_as_a_whole(
    change: dict[str, Any], says: str
) -> None:
    decision = decide_series("s", series(**change), None, Known(), now=T0, limits=LIMITS)
    assert [(s.action, s.key) for s in decision.steps] == [(Action.REJECT, "s")]
    outcome = decision.steps[0].outcome
    assert outcome is not None and says in (outcome.error or "")


def test_when_the_decision_next_changes() -> None:
    """For the incremental poll: nothing changes before the next due time, the lateness limit
    of one with the sender, or a claim going stale."""
    idle = decide_series("s", series(), None, Known(), now=at(0, -100), limits=LIMITS)
    assert idle.changes_at == T0
    waiting = decide_series(
        "s", series(), None, Known(ledger={at(0): claimed(0)}), now=at(0, 2), limits=LIMITS
    )
    assert waiting.changes_at == at(1)
    far = Limits(horizon=timedelta(seconds=2), max_lateness=None, grace=LIMITS.grace)
    ahead = decide_series("s", series(), None, Known(), now=at(0, -100), limits=far)
    assert ahead.changes_at == T0 - far.horizon  # it enters the horizon


def test_fires_of_a_cancelled_series_cancel_those_occurrences() -> None:
    raw = series(status="cancelled")
    cancelled = decide_fire("s", {at(0)}, raw, None, Known(), now=at(0), limits=LIMITS)
    assert [(s.action, s.key) for s in cancelled] == [(Action.CANCEL, oid(0))]
    paused = decide_fire(
        "s",
        {at(0)},
        series(status="sent"),
        None,
        Known(handed={at(0): HandOver(V)}),
        now=at(0),
        limits=LIMITS,
    )
    assert [(s.action, s.key) for s in paused] == [(Action.WITHDRAW, oid(0))]


@pytest.mark.parametrize(
    ("start", "zone", "rule", "now", "expected"),
    [
        # Feb 29 yearly: leap years only, the occurrence on the day itself
        (
            "2028-02-29T09:00:00",
            "Europe/London",
            "FREQ=YEARLY",
            "2028-02-29T09:00:00.300Z",
            ["s@20280229T090000Z"],
        ),
        # the last day of every month
        (
            "2027-01-31T18:00:00",
            "Europe/London",
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            "2027-02-28T18:00:01.000Z",
            ["s@20270228T180000Z"],
        ),
        # 09:00 every Monday stays 09:00 local across the clock changes
        (
            "2026-03-23T09:00:00",
            "Europe/London",
            "FREQ=WEEKLY",
            "2026-03-30T08:00:00.500Z",
            ["s@20260330T080000Z"],
        ),
        (
            "2026-03-02T09:00:00",
            "America/New_York",
            "FREQ=WEEKLY",
            "2026-03-09T13:00:00.500Z",
            ["s@20260309T130000Z"],
        ),
        (
            "2026-03-30T09:00:00",
            "Australia/Sydney",
            "FREQ=WEEKLY",
            "2026-04-05T23:00:00.500Z",
            ["s@20260405T230000Z"],
        ),
        (
            "2026-09-28T09:00:00",
            "Australia/Sydney",
            "FREQ=WEEKLY",
            "2026-10-04T22:00:00.500Z",
            ["s@20261004T220000Z"],
        ),
    ],
    ids=[
        "feb-29",
        "last-day",
        "london-spring",
        "new-york-spring",
        "sydney-autumn",
        "sydney-spring",
    ],
)
def test_the_occurrence_handed_over_is_the_right_instant(
    start: str, zone: str, rule: str, now: str, expected: list[str]
) -> None:
    raw = series(scheduledTime=start, timezone=zone, repeat=rule)
    moment = datetime.fromisoformat(now)
    decision = decide_series("s", raw, None, Known(), now=moment, limits=LIMITS)
    dispatched = [s for s in decision.steps if s.action is Action.DISPATCH]
    assert dispatched[-1].key == expected[-1]
    assert dispatched[-1].due_message().scheduled_time == datetime.strptime(
        expected[-1].split("@")[1], "%Y%m%dT%H%M%SZ"
    ).replace(tzinfo=UTC)


def plan_of(messages: list[dict[str, Any]], **kw: Any) -> Any:
    from wasched.common.document import Document
    from wasched.poller.plan import plan

    kw.setdefault("handed", {})
    kw.setdefault("schedules", {})
    return plan(Document(messages=messages), {}, now=at(0, 0.5), limits=LIMITS, **kw)


def test_a_one_time_message_with_an_occurrence_id_of_a_series_is_left_alone() -> None:
    other = {**series(), "id": oid(0), "status": "pending"}
    other.pop("repeat")
    found = plan_of([series(), other])
    assert [s.action for s in found.steps if s.key == oid(0)] == [Action.DISPATCH]  # the series'
    assert found.steps[0].due_message().message == "Bins out"
    assert [(i.reason, i.where) for i in found.ignored] == [("occurrence_id", f"message {oid(0)}")]
    alone = plan_of([other])  # without that series it is an ordinary message, as before
    assert [(s.action, s.key) for s in alone.steps] == [(Action.DISPATCH, oid(0))]
    assert alone.ignored == []


def test_the_series_keeps_its_hand_overs_and_a_cancelled_one_holds_them_back() -> None:
    handed = {oid(0): HandOver(V)}
    running = plan_of([series()], handed=handed)
    assert [s.action for s in running.steps if s.key == oid(0)] == [Action.HOLD]
    assert running.series == [("s", at(1))]
    assert running.counts.due == 1  # with the sender
    stopped = plan_of([series(status="cancelled")], handed=handed)
    assert [(s.action, s.key) for s in stopped.steps] == [(Action.WITHDRAW, oid(0))]
    assert stopped.series == []


def test_plan_passes_each_series_its_ledger_entries() -> None:
    found = plan_of([series()], ledgered={"s": {at(0): claimed(0)}})
    assert [s.action for s in found.steps if s.key == oid(0)] == [Action.HOLD]


def test_a_repeating_message_is_never_handed_over_as_one_message() -> None:
    """Round 1's poller read `repeat` as an unknown field: the series went out once, as a
    one-time message with the series' id, and was marked sent."""
    found = plan_of([series()])
    assert [s.key for s in found.steps if s.action is Action.DISPATCH] == [oid(0)]
    assert "s" not in {s.key for s in found.steps if s.action is not Action.NOTE}
