"""The poller's decisions, as tables: no servers, `now` fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wasched.common.clock import format_utc
from wasched.common.document import Document
from wasched.common.events import DueMessage
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status, content_version
from wasched.poller.changes import next_change
from wasched.poller.plan import (
    Action,
    Gate,
    HandOver,
    Limits,
    decide,
    decide_fire,
    expiry_reason,
    plan,
)

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


V = content_version(msg())
"""The version of the default message."""
OLD = "0123456789abcdef"
"""Some earlier version of it."""


def entry(state: LedgerState, age: timedelta = timedelta(0), **fields: Any) -> LedgerEntry:
    return LedgerEntry(state=state, at=NOW - age, **fields)


def gate(version: str | None) -> LedgerEntry:
    return entry(LedgerState.SUPERSEDED, version=version)


def rejected(kind: ErrorKind, version: str | None) -> LedgerEntry:
    return entry(LedgerState.FAILED, error_kind=kind, error="no", version=version)


HANDED = HandOver(version=V)
HANDED_OLD = HandOver(version=OLD)
REGATED = HandOver(version=V, regated=True)
SOON = timedelta(seconds=5)


@pytest.mark.parametrize(
    ("raw", "ledger", "handed", "action", "gate_"),
    [
        (msg(at=timedelta(seconds=-5)), None, None, Action.DISPATCH, None),
        (msg(at=timedelta(0)), None, None, Action.DISPATCH, None),
        (msg(at=SOON), None, None, Action.SCHEDULE, None),
        (msg(at=timedelta(hours=1)), None, None, Action.SCHEDULE, None),
        (msg(at=timedelta(hours=1, seconds=1)), None, None, Action.WAIT, None),
        (msg(), None, HANDED, Action.HOLD, None),
        (msg(at=timedelta(hours=-25)), None, None, Action.EXPIRE, None),
        (msg(at=timedelta(hours=-25)), None, HANDED, Action.EXPIRE, None),
        (msg(expiresAt=format_utc(NOW - timedelta(seconds=1))), None, None, Action.EXPIRE, None),
        (msg(expiresAt=format_utc(NOW + timedelta(seconds=1))), None, None, Action.DISPATCH, None),
        (msg(scheduledTime="tomorrow"), None, None, Action.REJECT, None),
        (msg(scheduledTime="2025-12-24T10:00:00"), None, None, Action.REJECT, None),
        (msg(to=""), None, None, Action.REJECT, None),
        (msg(to="12"), None, None, Action.REJECT, None),
        (msg(message="   "), None, None, Action.REJECT, None),
        (msg(), entry(LedgerState.SENT), None, Action.RESTORE, None),
        (msg(), entry(LedgerState.CANCELLED), None, Action.RESTORE, None),
        (msg(to=""), entry(LedgerState.FAILED), None, Action.RESTORE, None),
        (msg(), entry(LedgerState.CLAIMED, timedelta(seconds=30)), HANDED, Action.HOLD, None),
        (msg(), entry(LedgerState.CLAIMED, timedelta(minutes=11)), None, Action.INTERRUPT, None),
        # a changed message supersedes what was handed over, then goes at its own time
        (msg(), None, HANDED_OLD, Action.DISPATCH, Gate.SUPERSEDE),
        (msg(at=SOON), None, HANDED_OLD, Action.SCHEDULE, Gate.SUPERSEDE),
        (msg(at=timedelta(days=2)), None, HANDED_OLD, Action.WAIT, Gate.SUPERSEDE),
        (msg(to=""), None, HANDED_OLD, Action.REJECT, None),
        (msg(), gate(V), HANDED_OLD, Action.DISPATCH, None),  # the gate is in place already
        (msg(), gate(V), HANDED, Action.HOLD, None),
        (msg(), gate(V), REGATED, Action.DISPATCH, None),
        (msg(), gate(None), HANDED, Action.DISPATCH, Gate.SUPERSEDE),  # withdrawn, came back
        (msg(at=SOON), gate(OLD), None, Action.SCHEDULE, Gate.SUPERSEDE),
        (msg(), gate(V), None, Action.DISPATCH, None),
        # a rejection of another version is reopened; of this version it stands
        (msg(), rejected(ErrorKind.INVALID_RECIPIENT, OLD), None, Action.DISPATCH, Gate.REOPEN),
        (msg(), rejected(ErrorKind.NOT_ON_WHATSAPP, OLD), None, Action.DISPATCH, Gate.REOPEN),
        (msg(), rejected(ErrorKind.VALIDATION, OLD), None, Action.DISPATCH, Gate.REOPEN),
        (msg(at=SOON), entry(LedgerState.EXPIRED, version=OLD), None, Action.SCHEDULE, Gate.REOPEN),
        (msg(), rejected(ErrorKind.NOT_ON_WHATSAPP, V), None, Action.RESTORE, None),
        (msg(), rejected(ErrorKind.NOT_ON_WHATSAPP, None), None, Action.RESTORE, None),
        (msg(), rejected(ErrorKind.WHATSAPP_ERROR, OLD), None, Action.RESTORE, None),
        (msg(), rejected(ErrorKind.INTERRUPTED, OLD), None, Action.RESTORE, None),
        (msg(), entry(LedgerState.SENT, version=OLD), None, Action.RESTORE, None),
        (
            msg(to="12"),
            rejected(ErrorKind.INVALID_RECIPIENT, OLD),
            None,
            Action.REJECT,
            Gate.REOPEN,
        ),
    ],
    ids=[
        "past-due",
        "due-now",
        "soon",
        "at-horizon",
        "beyond-horizon",
        "already-handed",
        "over-late",
        "over-late-even-if-handed",
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
        "changed-while-handed",
        "moved-later-while-handed",
        "moved-beyond-horizon-while-handed",
        "made-invalid-while-handed",
        "gate-allows-it-but-old-one-live",
        "gate-allows-the-one-handed",
        "gate-moved-back-to-the-one-handed",
        "withdrawn-and-back",
        "gate-for-another-version",
        "gate-for-this-version",
        "corrected-bad-recipient",
        "corrected-not-on-whatsapp",
        "corrected-validation",
        "corrected-expiry",
        "same-version-rejected",
        "rejected-before-versions",
        "whatsapp-error-is-final",
        "interrupted-is-final",
        "sent-is-final",
        "corrected-but-still-bad",
    ],
)
def test_decide(
    raw: dict[str, Any],
    ledger: LedgerEntry | None,
    handed: HandOver | None,
    action: Action,
    gate_: Gate | None,
) -> None:
    step = decide(raw["id"], raw, ledger, handed=handed, now=NOW, limits=LIMITS)
    assert (step.action, step.gate) == (action, gate_)


def test_the_hand_over_carries_the_version_it_was_built_from() -> None:
    step = decide("m1", msg(), None, now=NOW, limits=LIMITS)
    assert step.due_message().version == V
    edited = decide("m1", msg(message="edited"), None, now=NOW, limits=LIMITS)
    assert edited.due_message().version == content_version(msg(message="edited")) != V


def test_a_due_message_with_a_schedule_for_its_time_is_left_to_its_fire_for_a_moment() -> None:
    at = NOW - LIMITS.fire_grace + timedelta(milliseconds=1)
    raw = msg(at=at - NOW)
    step = decide("m1", raw, None, scheduled_at=at, now=NOW, limits=LIMITS)
    assert (step.action, step.at) == (Action.SCHEDULE, at)
    assert next_change(step, None, now=NOW, limits=LIMITS) == at + LIMITS.fire_grace
    moved = decide("m1", raw, None, scheduled_at=at - SOON, now=NOW, limits=LIMITS)
    assert moved.action is Action.DISPATCH


def test_a_schedule_nats_has_not_fired_by_the_grace_is_overtaken_by_the_poll() -> None:
    at = NOW - LIMITS.fire_grace
    step = decide("m1", msg(at=at - NOW), None, scheduled_at=at, now=NOW, limits=LIMITS)
    assert (step.action, step.at) == (Action.DISPATCH, None)


def test_validation_failure_names_the_problem_and_the_version() -> None:
    step = decide("m1", msg(to=""), None, now=NOW, limits=LIMITS)
    assert step.outcome is not None
    assert step.outcome.status is Status.FAILED
    assert step.outcome.error_kind is ErrorKind.VALIDATION
    assert step.outcome.error == "to is missing or empty"
    assert step.outcome.version == content_version(msg(to=""))
    bad_phone = decide("m1", msg(to="12"), None, now=NOW, limits=LIMITS)
    assert bad_phone.outcome is not None
    assert bad_phone.outcome.error_kind is ErrorKind.INVALID_RECIPIENT
    naive = decide("m1", msg(scheduledTime="2025-12-24 10:00"), None, now=NOW, limits=LIMITS)
    assert naive.outcome is not None and "with a trailing Z" in (naive.outcome.error or "")


def test_restore_carries_the_ledger_outcome_and_receipts() -> None:
    sent = entry(LedgerState.SENT, sent_at=NOW, wa_message_id="WA1", read_at=NOW + SOON)
    step = decide("m1", msg(), sent, now=NOW, limits=LIMITS)
    assert step.outcome is not None
    assert (step.outcome.status, step.outcome.wa_message_id) == (Status.SENT, "WA1")
    assert [(r.kind, r.at) for r in step.receipts] == [("read", NOW + SOON)]
    stale = decide(
        "m1", msg(), entry(LedgerState.CLAIMED, timedelta(hours=1)), now=NOW, limits=LIMITS
    )
    assert stale.outcome is not None
    assert stale.outcome.error_kind is ErrorKind.INTERRUPTED


def test_no_lateness_limit_sends_however_late() -> None:
    unlimited = Limits(horizon=timedelta(hours=1), max_lateness=None)
    raw = msg(at=timedelta(days=-30))
    assert decide("m1", raw, None, now=NOW, limits=unlimited).action is Action.DISPATCH


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
    ("fire_at", "raw", "ledger", "handed", "action", "new_at"),
    [
        (timedelta(0), msg(), None, None, Action.DISPATCH, None),
        (EARLY, msg(at=EARLY), None, None, Action.DISPATCH, None),
        (timedelta(0), None, None, None, Action.CANCEL, None),
        (timedelta(0), msg(status="cancelled"), None, None, Action.CANCEL, None),
        (timedelta(0), msg(status="sent"), None, None, Action.DROP, None),
        (timedelta(0), msg(status="paused"), None, None, Action.DROP, None),
        (timedelta(0), msg(status="paused"), None, HANDED_OLD, Action.WITHDRAW, None),
        (
            timedelta(0),
            msg(at=timedelta(seconds=30)),
            None,
            None,
            Action.SCHEDULE,
            timedelta(seconds=30),
        ),
        (timedelta(0), msg(at=timedelta(seconds=-30)), None, None, Action.DISPATCH, None),
        (timedelta(0), msg(at=timedelta(hours=3)), None, None, Action.WAIT, None),
        (timedelta(0), msg(), entry(LedgerState.CANCELLED), None, Action.RESTORE, None),
        (timedelta(0), msg(), None, HANDED, Action.HOLD, None),
        (timedelta(0), msg(to=""), None, None, Action.REJECT, None),
    ],
    ids=[
        "unchanged",
        "unchanged-fired-before-our-clock",
        "deleted",
        "cancelled",
        "sent-meanwhile",
        "paused",
        "paused-while-an-old-version-is-handed",
        "moved-later",
        "moved-earlier",
        "moved-beyond-horizon",
        "cancelled-in-ledger",
        "already-handed",
        "made-invalid",
    ],
)
def test_decide_fire(
    fire_at: timedelta,
    raw: dict[str, Any] | None,
    ledger: LedgerEntry | None,
    handed: HandOver | None,
    action: Action,
    new_at: timedelta | None,
) -> None:
    step = decide_fire(fired(at=fire_at), raw, ledger, handed=handed, now=NOW, limits=LIMITS)
    assert step.action is action
    if new_at is not None:
        assert step.at == NOW + new_at


def test_fire_forwards_the_current_text() -> None:
    step = decide_fire(
        fired(), msg(message="edited text"), None, handed=None, now=NOW, limits=LIMITS
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
    handed = {
        k: HandOver(version=OLD)
        for k in ("deleted", "gone-by-status", "done", "withdrawn", "settled")
    }
    ledger = {
        "withdrawn": gate(None),
        "settled": entry(LedgerState.SENT),
        "done": entry(LedgerState.SENT),
    }
    scheduled = {"soon": NOW + timedelta(minutes=5), "vanished": NOW + SOON}
    result = plan(doc, ledger, handed=handed, schedules=scheduled, now=NOW, limits=LIMITS)
    actions = {step.key: step.action for step in result.steps}
    assert actions == {
        "due": Action.DISPATCH,
        "soon": Action.SCHEDULE,
        "later": Action.WAIT,
        "bad": Action.REJECT,
        "due#1": Action.DUPLICATE,
        "deleted": Action.WITHDRAW,  # only gated at a poll: it may come back
        "gone-by-status": Action.WITHDRAW,
        "done": Action.DROP,  # settled: nothing to withdraw
        "settled": Action.DROP,
        # "withdrawn" is gated already; "vanished" keeps its schedule: its fire decides
    }
    assert result.counts.total == 9
    assert result.counts.pending == 6
    assert result.counts.invalid == 2  # bad and the repeat
    assert result.counts.due == 1
    assert result.counts.ignored == {"bad_id": 1}


def test_messages_it_cannot_act_on_are_counted_by_reason() -> None:
    no_status = msg("a")
    del no_status["status"]
    doc = Document(
        messages=[
            no_status,
            msg("b", status="Pending"),
            msg("c", status="paused"),
            msg(42),  # type: ignore[arg-type]
            msg(""),
            msg("d", status=None),
            msg("e", status="sent"),
        ]
    )
    result = plan(doc, {}, handed={}, schedules={}, now=NOW, limits=LIMITS)
    assert result.steps == []
    assert result.counts.ignored == {"no_status": 2, "unknown_status": 2, "bad_id": 2}
    named = {(i.where, i.reason): i.text for i in result.ignored}
    assert "statuses are lowercase" in named[("message b", "unknown_status")]
    assert "not a string" in named[("messages[3]", "bad_id")]


def test_receipts_wiped_from_a_sent_message_are_restored() -> None:
    stored = msg("r", status="sent", deliveredAt=None)
    sent = entry(LedgerState.SENT, delivered_at=NOW, read_at=NOW + SOON)
    result = plan(
        Document(messages=[stored]), {"r": sent}, handed={}, schedules={}, now=NOW, limits=LIMITS
    )
    (step,) = result.steps
    assert (step.action, step.outcome) == (Action.RESTORE, None)
    assert sorted(r.kind for r in step.receipts) == ["delivered", "read"]
    kept = msg("r", status="sent", deliveredAt="2025-12-24T10:00:00.000Z", readAt="x")
    none = plan(
        Document(messages=[kept]), {"r": sent}, handed={}, schedules={}, now=NOW, limits=LIMITS
    )
    assert none.steps == []


def test_counts_overdue_for_messages_waiting_on_the_sender() -> None:
    doc = Document(
        messages=[msg("a", timedelta(minutes=-5)), msg("b", timedelta(seconds=-10)), msg("c")]
    )
    handed = {k: HandOver(version=content_version(r)) for k, r in doc.keyed() if k in {"a", "b"}}
    result = plan(doc, {}, handed=handed, schedules={}, now=NOW, limits=LIMITS)
    assert result.counts.due == 3
    assert result.counts.overdue == 1
    assert result.counts.oldest_overdue_seconds == 300.0


def test_duplicate_reason_names_the_id() -> None:
    doc = Document(messages=[msg("x"), msg("x")])
    steps = plan(doc, {}, handed={}, schedules={}, now=NOW, limits=LIMITS).steps
    dup = next(s for s in steps if s.action is Action.DUPLICATE)
    assert dup.key == "x#1"
    assert dup.outcome is not None and "'x' repeats" in (dup.outcome.error or "")


def test_horizon_shorter_than_two_polls_is_a_setting_problem() -> None:
    from wasched.common.settings import load_settings
    from wasched.poller.plan import settings_problem

    bad = load_settings(_env_file=None, poll_interval_seconds=60, schedule_horizon_seconds=90)
    problem = settings_problem(bad)
    assert problem is not None
    assert "SCHEDULE_HORIZON_SECONDS=90" in problem and "POLL_INTERVAL_SECONDS=60" in problem
    good = load_settings(_env_file=None, poll_interval_seconds=60, schedule_horizon_seconds=120)
    assert settings_problem(good) is None
