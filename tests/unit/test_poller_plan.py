"""The poller's decisions, as tables: no servers, `now` fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wasched.common.clock import format_utc
from wasched.common.document import Document
from wasched.common.events import DueMessage
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.poller.plan import Action, Limits, decide, decide_fire, expiry_reason, plan

NOW = datetime(2025, 12, 24, 10, 0, 0, tzinfo=UTC)
LIMITS = Limits(horizon=timedelta(hours=1), max_lateness=timedelta(days=1))


def msg(ident: str = "m1", at: timedelta = timedelta(0), **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": ident,
        "to": "447957189696",
        "message": "Happy Birthday!",
        "scheduledTime": format_utc(NOW + at),
        "status": "pending",
    }
    raw.update(fields)
    return raw


def entry(state: LedgerState, age: timedelta = timedelta(0), **fields: Any) -> LedgerEntry:
    return LedgerEntry(state=state, at=NOW - age, **fields)


@pytest.mark.parametrize(
    ("raw", "ledger", "dispatched", "action"),
    [
        (msg(at=timedelta(seconds=-5)), None, False, Action.DISPATCH),
        (msg(at=timedelta(0)), None, False, Action.DISPATCH),
        (msg(at=timedelta(seconds=5)), None, False, Action.SCHEDULE),
        (msg(at=timedelta(hours=1)), None, False, Action.SCHEDULE),
        (msg(at=timedelta(hours=1, seconds=1)), None, False, Action.WAIT),
        (msg(at=timedelta(seconds=-5)), None, True, Action.HOLD),
        (msg(at=timedelta(hours=-25)), None, False, Action.EXPIRE),
        (msg(at=timedelta(hours=-25)), None, True, Action.EXPIRE),
        (msg(expiresAt=format_utc(NOW - timedelta(seconds=1))), None, False, Action.EXPIRE),
        (msg(expiresAt=format_utc(NOW + timedelta(seconds=1))), None, False, Action.DISPATCH),
        (msg(scheduledTime="tomorrow"), None, False, Action.REJECT),
        (msg(scheduledTime="2025-12-24T10:00:00"), None, False, Action.REJECT),
        (msg(to=""), None, False, Action.REJECT),
        (msg(to="12"), None, False, Action.REJECT),
        (msg(message="   "), None, False, Action.REJECT),
        (msg(), entry(LedgerState.SENT), False, Action.RESTORE),
        (msg(), entry(LedgerState.CANCELLED), False, Action.RESTORE),
        (msg(to=""), entry(LedgerState.FAILED), False, Action.RESTORE),
        (msg(), entry(LedgerState.CLAIMED, timedelta(seconds=30)), False, Action.HOLD),
        (msg(), entry(LedgerState.CLAIMED, timedelta(minutes=11)), False, Action.RESTORE),
    ],
    ids=[
        "past-due",
        "due-now",
        "soon",
        "at-horizon",
        "beyond-horizon",
        "already-dispatched",
        "over-late",
        "over-late-even-if-dispatched",
        "past-expiresAt",
        "before-expiresAt",
        "bad-date",
        "naive-date",
        "empty-to",
        "bad-phone",
        "blank-text",
        "ledger-sent",
        "ledger-cancelled",
        "ledger-beats-validation",
        "claimed-recently",
        "claimed-long-ago",
    ],
)
def test_decide(
    raw: dict[str, Any], ledger: LedgerEntry | None, dispatched: bool, action: Action
) -> None:
    step = decide(raw["id"], raw, ledger, dispatched=dispatched, now=NOW, limits=LIMITS)
    assert step.action is action


def test_validation_failure_names_the_problem() -> None:
    step = decide("m1", msg(to=""), None, dispatched=False, now=NOW, limits=LIMITS)
    assert step.outcome is not None
    assert step.outcome.status is Status.FAILED
    assert step.outcome.error_kind is ErrorKind.VALIDATION
    assert step.outcome.error == "to is missing or empty"
    bad_phone = decide("m1", msg(to="12"), None, dispatched=False, now=NOW, limits=LIMITS)
    assert bad_phone.outcome is not None
    assert bad_phone.outcome.error_kind is ErrorKind.INVALID_RECIPIENT


def test_restore_carries_the_ledger_outcome() -> None:
    sent = entry(LedgerState.SENT, sent_at=NOW, wa_message_id="WA1")
    step = decide("m1", msg(), sent, dispatched=False, now=NOW, limits=LIMITS)
    assert step.outcome is not None
    assert (step.outcome.status, step.outcome.wa_message_id) == (Status.SENT, "WA1")
    stale = decide(
        "m1",
        msg(),
        entry(LedgerState.CLAIMED, timedelta(hours=1)),
        dispatched=False,
        now=NOW,
        limits=LIMITS,
    )
    assert stale.outcome is not None
    assert stale.outcome.error_kind is ErrorKind.INTERRUPTED


def test_no_lateness_limit_sends_however_late() -> None:
    unlimited = Limits(horizon=timedelta(hours=1), max_lateness=None)
    raw = msg(at=timedelta(days=-30))
    assert decide("m1", raw, None, dispatched=False, now=NOW, limits=unlimited).action is (
        Action.DISPATCH
    )


@pytest.mark.parametrize(
    ("at", "expires", "reason"),
    [
        (timedelta(hours=-25), None, "not sent: 1 d 1 h late, more than the 1 d allowed"),
        (timedelta(hours=-23), None, None),
        (timedelta(0), timedelta(seconds=-1), "not sent: past its expiresAt (2025-12-24T09:59:59"),
    ],
)
def test_expiry_reason(at: timedelta, expires: timedelta | None, reason: str | None) -> None:
    from wasched.common.messages import read_message

    fields = {"expiresAt": format_utc(NOW + expires)} if expires is not None else {}
    found = expiry_reason(read_message(msg(at=at, **fields)), NOW, LIMITS)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason)


def fired(ident: str = "m1", at: timedelta = timedelta(0)) -> DueMessage:
    return DueMessage(id=ident, to="447957189696", message="hi", scheduled_time=NOW + at)


EARLY = timedelta(milliseconds=300)


@pytest.mark.parametrize(
    ("fire_at", "raw", "ledger", "dispatched", "action", "new_at"),
    [
        (timedelta(0), msg(), None, False, Action.DISPATCH, None),
        (EARLY, msg(at=EARLY), None, False, Action.DISPATCH, None),
        (timedelta(0), None, None, False, Action.CANCEL, None),
        (timedelta(0), msg(status="cancelled"), None, False, Action.CANCEL, None),
        (timedelta(0), msg(status="sent"), None, False, Action.DROP, None),
        (
            timedelta(0),
            msg(at=timedelta(seconds=30)),
            None,
            False,
            Action.SCHEDULE,
            timedelta(seconds=30),
        ),
        (timedelta(0), msg(at=timedelta(seconds=-30)), None, False, Action.DISPATCH, None),
        (timedelta(0), msg(at=timedelta(hours=3)), None, False, Action.WAIT, None),
        (timedelta(0), msg(), entry(LedgerState.CANCELLED), False, Action.RESTORE, None),
        (timedelta(0), msg(), None, True, Action.HOLD, None),
        (timedelta(0), msg(to=""), None, False, Action.REJECT, None),
    ],
    ids=[
        "unchanged",
        "unchanged-fired-before-our-clock",
        "deleted",
        "cancelled",
        "sent-meanwhile",
        "moved-later",
        "moved-earlier",
        "moved-beyond-horizon",
        "cancelled-in-ledger",
        "already-dispatched",
        "made-invalid",
    ],
)
def test_decide_fire(
    fire_at: timedelta,
    raw: dict[str, Any] | None,
    ledger: LedgerEntry | None,
    dispatched: bool,
    action: Action,
    new_at: timedelta | None,
) -> None:
    step = decide_fire(
        fired(at=fire_at), raw, ledger, dispatched=dispatched, now=NOW, limits=LIMITS
    )
    assert step.action is action
    if new_at is not None:
        assert step.at == NOW + new_at


def test_fire_forwards_the_current_text() -> None:
    step = decide_fire(
        fired(), msg(message="edited text"), None, dispatched=False, now=NOW, limits=LIMITS
    )
    assert step.action is Action.DISPATCH
    assert step.due_message().message == "edited text"


def test_plan_handles_every_pending_message_and_what_was_handed_on() -> None:
    doc = Document(
        messages=[
            msg("due", timedelta(seconds=-1)),
            msg("soon", timedelta(minutes=5)),
            msg("later", timedelta(days=2)),
            msg("bad", to=""),
            msg("due", timedelta(seconds=-1)),  # repeats an id
            msg("done", status="sent"),
            msg("gone-by-status", status="cancelled"),
            {"to": "447957189696", "message": "no id", "status": "pending"},
            msg("other-status", status="failed"),
        ]
    )
    tracked = {"deleted", "gone-by-status", "done", "soon"}
    result = plan(doc, {}, dispatched={"done"}, tracked=tracked, now=NOW, limits=LIMITS)
    actions = {step.key: step.action for step in result.steps}
    assert actions == {
        "due": Action.DISPATCH,
        "soon": Action.SCHEDULE,
        "later": Action.WAIT,
        "bad": Action.REJECT,
        "due#1": Action.DUPLICATE,
        "deleted": Action.CANCEL,
        "gone-by-status": Action.CANCEL,
        "done": Action.DROP,
    }
    assert result.counts.total == 9
    assert result.counts.pending == 6
    assert result.counts.invalid == 3  # bad, the repeat, the one without id
    assert result.counts.due == 1


def test_counts_overdue_for_messages_waiting_on_the_sender() -> None:
    doc = Document(
        messages=[msg("a", timedelta(minutes=-5)), msg("b", timedelta(seconds=-10)), msg("c")]
    )
    result = plan(doc, {}, dispatched={"a", "b"}, tracked={"a", "b"}, now=NOW, limits=LIMITS)
    assert result.counts.due == 3
    assert result.counts.overdue == 1
    assert result.counts.oldest_overdue_seconds == 300.0


def test_duplicate_reason_names_the_id() -> None:
    doc = Document(messages=[msg("x"), msg("x")])
    steps = plan(doc, {}, dispatched=set(), tracked=set(), now=NOW, limits=LIMITS).steps
    dup = next(s for s in steps if s.action is Action.DUPLICATE)
    assert dup.key == "x#1"
    assert dup.outcome is not None and "'x' repeats" in (dup.outcome.error or "")
