"""The plan kept between polls (`PlanIndex`) is the full plan, whatever happens between polls.

Random documents, ledgers, hand-overs and schedules; then random edits (a message
changed, added or removed, a new body with the same content, a ledger entry, a
hand-over or a schedule changed) over advancing time. After each, the kept plan must
equal `plan()` step for step, with the same counts and the same messages left alone,
and what it hands to the executor must include every step that differs from the last
poll's and every step a full plan repeats at each poll.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wasched.common.clock import TimeFormatError, format_utc, parse_utc
from wasched.common.document import Document, typed
from wasched.common.jsontext import RawNumber
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, content_version
from wasched.common.recurrence import occurrence_id, parse_occurrence_id
from wasched.poller.changes import REPEATED
from wasched.poller.index import PlanIndex
from wasched.poller.plan import HandOver, Limits, Step, plan

START = datetime(2026, 12, 24, 10, 0, tzinfo=UTC)
OCCURRENCES = [occurrence_id(i, START + timedelta(minutes=m)) for i in "ab" for m in (0, 30)]
"""Ids of occurrences of series `a` and `b` (when those are repeating messages)."""
IDS = ["a", "b", "c", "d", "e", *OCCURRENCES]
REPEATS = ["FREQ=MINUTELY;INTERVAL=30;COUNT=4", "FREQ=HOURLY", "FREQ=DAILY;COUNT=0", "x"]

ENDS = ["9999-12-31T23:59:59.999Z", "1000-01-01T00:00:00Z"]
"""The ends of the calendar a stored time may have."""
offsets = st.integers(min_value=-26 * 60, max_value=3 * 60).map(lambda m: timedelta(minutes=m))


def when(offset: timedelta) -> str:
    return format_utc(START + offset)


raw_messages = st.fixed_dictionaries(
    {
        "id": st.sampled_from([*IDS[:5], *IDS[:5], OCCURRENCES[0], "", 7]),
        "to": st.sampled_from(["447957189696", "447957189696", "12", ""]),
        "message": st.sampled_from(["hi", "hi", "hello", " "]),
        "scheduledTime": st.one_of(offsets.map(when), st.sampled_from(["tomorrow", *ENDS])),
        "status": st.sampled_from(["pending", "pending", "pending", "sent", "failed", "Pending"]),
    },
    optional={
        "expiresAt": st.one_of(offsets.map(when), st.sampled_from(ENDS)),
        "deliveredAt": st.just("2026-12-24T10:00:00.000Z"),
        "contactName": st.just("Zoë"),
        "linkPreview": st.sampled_from([True, 1, 1.0, RawNumber("1.0")]),
        "repeat": st.sampled_from(REPEATS),
    },
)
EQUAL_BUT_NOT_SAME = [True, 1, 1.0, RawNumber("1.0"), RawNumber("1.00")]
"""Equal for Python, not as JSON: a change between them is a change of the message."""
versions = st.sampled_from([None, "0123456789abcdef", "fedcba9876543210"])


@st.composite
def entries(draw: st.DrawFn) -> LedgerEntry:
    state = draw(st.sampled_from(list(LedgerState)))
    at = START + draw(offsets)
    fields: dict[str, Any] = {"state": state, "at": at, "version": draw(versions)}
    if state is LedgerState.SENT:
        fields["delivered_at"] = draw(st.sampled_from([None, at]))
        fields["read_at"] = draw(st.sampled_from([None, at]))
    if state is LedgerState.FAILED:
        fields["error_kind"] = draw(st.sampled_from([ErrorKind.VALIDATION, ErrorKind.INTERRUPTED]))
        fields["error"] = "no"
    return LedgerEntry(**fields)


hand_overs = st.builds(HandOver, version=versions, regated=st.booleans())
ops = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=0, max_value=3 * 3600)),
    # to a message's time, or a fraction of a second after (`fire_grace`)
    st.tuples(st.just("reach"), st.integers(min_value=0), st.sampled_from([0, 0.25, 0.5, 0.75])),
    st.tuples(st.just("edit"), st.integers(min_value=0), raw_messages),
    st.tuples(st.just("add"), raw_messages),
    st.tuples(st.just("remove"), st.integers(min_value=0)),
    st.tuples(st.just("reparse")),
    st.tuples(
        st.just("retype"),
        st.integers(min_value=0),
        st.sampled_from(["linkPreview", "status", "id"]),
        st.sampled_from(EQUAL_BUT_NOT_SAME),
    ),
    st.tuples(st.just("ledger"), st.sampled_from(IDS), st.one_of(st.none(), entries())),
    st.tuples(st.just("hand"), st.sampled_from(IDS), st.one_of(st.none(), hand_overs)),
    st.tuples(st.just("live"), st.sampled_from(IDS)),
    st.tuples(st.just("schedule"), st.sampled_from(IDS), st.one_of(st.none(), offsets)),
    st.tuples(st.just("own"), st.sampled_from(IDS)),
)


def view(step: Step) -> tuple[Any, ...]:
    """A step without the outcome's own timestamp (an interruption's is the wall clock)."""
    outcome = step.outcome.model_dump(exclude={"at"}) if step.outcome else None
    note = step.note
    return (step.key, step.action, step.message, step.at, step.version, step.gate, outcome, note)


def occurrences_of(ledger: dict[str, LedgerEntry]) -> dict[str, dict[datetime, LedgerEntry]]:
    """The ledger's entries of occurrences, by series (what `LedgerMirror.occurrences` is)."""
    found: dict[str, dict[datetime, LedgerEntry]] = {}
    for key, entry in ledger.items():
        if (parsed := parse_occurrence_id(key)) is not None:
            found.setdefault(parsed[0], {})[parsed[1]] = entry
    return found


def by_key(steps: list[Step]) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for step in steps:
        found.setdefault(step.key, []).append(view(step))
    return found


ONE = {"id": "a", "to": "447957189696", "message": "hi", "status": "pending"}


@settings(max_examples=300, deadline=None)
@example(  # a schedule for its own time, left to fire for `fire_grace`, then overtaken
    messages=[ONE | {"scheduledTime": when(timedelta(minutes=10))}],
    ledger={},
    handed={},
    offsets_={},
    steps=[("own", "a"), ("reach", 0, 0), ("reach", 0, 0.75)],
    lateness=timedelta(days=1),
)
@given(
    st.lists(raw_messages, max_size=8),
    st.dictionaries(st.sampled_from(IDS), entries(), max_size=4),
    st.dictionaries(st.sampled_from(IDS), hand_overs, max_size=3),
    st.dictionaries(st.sampled_from(IDS), offsets, max_size=3),
    st.lists(ops, min_size=1, max_size=25),
    st.sampled_from([timedelta(days=1), None]),
)
def test_the_kept_plan_is_the_full_plan(
    messages: list[dict[str, Any]],
    ledger: dict[str, LedgerEntry],
    handed: dict[str, HandOver],
    offsets_: dict[str, timedelta],
    steps: list[tuple[Any, ...]],
    lateness: timedelta | None,
) -> None:
    limits = Limits(horizon=timedelta(hours=1), max_lateness=lateness)
    schedules = {k: START + v for k, v in offsets_.items()}
    doc = Document(messages=messages, typed=typed(messages))
    index = PlanIndex(limits)
    now = START
    changed: set[str] = set()
    before: dict[str, list[tuple[Any, ...]]] = {}
    for op in [("advance", 0), *steps]:
        doc, now = apply(op, doc, ledger, handed, schedules, changed, now)
        ledgered = occurrences_of(ledger)
        full = plan(
            doc,
            ledger,
            handed=handed,
            schedules=schedules,
            now=now,
            limits=limits,
            ledgered=ledgered,
        )
        kept = index.refresh(
            doc,
            ledger,
            handed=handed,
            schedules=schedules,
            changed=set(changed),
            now=now,
            ledgered=lambda key, found=ledgered: found.get(key, {}),
        )
        index.settle(())
        changed.clear()
        whole = index.steps(ledger, handed=handed, schedules=schedules, now=now)
        assert [view(s) for s in whole] == [view(s) for s in full.steps], op
        assert kept.counts == full.counts, op
        assert kept.ignored == full.ignored, op
        assert kept.series == full.series, op
        emitted = {s.key for s in kept.steps}
        after = by_key(full.steps)
        differ = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        repeated = {s.key for s in full.steps if s.action in REPEATED}
        assert (differ & after.keys()) | repeated <= emitted, op
        before = after


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(EQUAL_BUT_NOT_SAME), min_size=1, max_size=4),
    st.lists(
        st.tuples(
            st.just("retype"),
            st.integers(min_value=0),
            st.sampled_from(["linkPreview", "status", "id"]),
            st.sampled_from(EQUAL_BUT_NOT_SAME),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_a_change_of_type_alone_is_a_change(
    values: list[Any], steps: list[tuple[Any, ...]]
) -> None:
    """`1 == True == 1.0` in Python; not in a content version, a log line or a decision."""
    limits = Limits(horizon=timedelta(hours=1), max_lateness=None)
    messages = [
        {"id": i, "to": "447957189696", "message": "hi", "status": "pending"}
        | {"scheduledTime": when(timedelta(0)), "linkPreview": v}
        for i, v in zip(IDS, values, strict=False)
    ]
    doc = Document(messages=messages, typed=True)
    index = PlanIndex(limits)
    index.refresh(doc, {}, handed={}, schedules={}, changed=(), now=START)
    for op in steps:
        doc, _ = apply(op, doc, {}, {}, {}, set(), START)
        full = plan(doc, {}, handed={}, schedules={}, now=START, limits=limits)
        kept = index.refresh(doc, {}, handed={}, schedules={}, changed=(), now=START)
        whole = index.steps({}, handed={}, schedules={}, now=START)
        assert [view(s) for s in whole] == [view(s) for s in full.steps], op
        assert (kept.counts, kept.ignored) == (full.counts, full.ignored), op


def apply(
    op: tuple[Any, ...],
    doc: Document,
    ledger: dict[str, LedgerEntry],
    handed: dict[str, HandOver],
    schedules: dict[str, datetime],
    changed: set[str],
    now: datetime,
) -> tuple[Document, datetime]:
    """One thing that happens between polls; documents are replaced, never changed."""
    kind, *args = op
    messages = list(doc.messages)
    if kind == "advance":
        return doc, now + timedelta(seconds=args[0])
    if kind == "reach" and messages:
        at = instant(messages[args[0] % len(messages)].get("scheduledTime"))
        if at is None or at.year != START.year:  # not to the ends of the calendar
            return doc, now
        return doc, max(now, at + timedelta(seconds=args[1]))
    if kind == "edit" and messages:
        messages[args[0] % len(messages)] = dict(args[1])
    elif kind == "add":
        messages.append(dict(args[0]))
    elif kind == "remove" and messages:
        del messages[args[0] % len(messages)]
    elif kind == "reparse":
        messages = [dict(m) for m in messages]
    elif kind == "retype" and messages:
        at = args[0] % len(messages)
        messages[at] = {**messages[at], args[1]: args[2]}
    elif kind == "ledger":
        set_or_drop(ledger, args[0], args[1])
        changed.add(args[0])
    elif kind == "hand":
        set_or_drop(handed, args[0], args[1])
        changed.add(args[0])
    elif kind == "live":  # handed over exactly the version the document holds now
        raw = next((m for m in messages if m.get("id") == args[0]), None)
        if raw is not None:
            handed[args[0]] = HandOver(version=content_version(raw))
            changed.add(args[0])
    elif kind == "own":  # a schedule for the message's own time: left to fire, for a while
        raw = next((m for m in messages if m.get("id") == args[0]), None)
        if raw is not None and (at := instant(raw.get("scheduledTime"))) is not None:
            schedules[args[0]] = at
            changed.add(args[0])
    elif kind == "schedule":
        set_or_drop(schedules, args[0], START + args[1] if args[1] is not None else None)
        changed.add(args[0])
    return Document(messages=messages, typed=typed(messages)), now


def instant(value: object) -> datetime | None:
    try:
        return parse_utc(value)
    except TimeFormatError:
        return None


def set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def test_a_message_expiring_at_this_very_instant_is_decided_again_at_the_next_poll() -> None:
    """`now > expiresAt` turns true just after expiresAt: found by the property above."""
    limits = Limits(horizon=timedelta(hours=1), max_lateness=None)
    raw = {"id": "a", "to": "447957189696", "message": "hi", "status": "pending"}
    raw |= {"scheduledTime": when(timedelta(0)), "expiresAt": when(timedelta(0))}
    index = PlanIndex(limits)
    first = index.refresh(Document([raw]), {}, handed={}, schedules={}, changed=(), now=START)
    assert [s.action.value for s in first.steps] == ["dispatch"]
    index.settle(())
    later = START + timedelta(seconds=1)
    again = index.refresh(Document([raw]), {}, handed={}, schedules={}, changed=(), now=later)
    assert [s.action.value for s in again.steps] == ["expire"]


def test_times_at_the_ends_of_the_calendar_are_kept_like_any_other() -> None:
    """A message at 9999-12-31 (or 1000-01-01): its next change must not overflow."""
    limits = Limits(horizon=timedelta(hours=1), max_lateness=timedelta(days=1))
    ends = ENDS
    messages = [
        {"id": f"m{i}", "to": "447957189696", "message": "hi", "status": "pending"}
        | {"scheduledTime": at, "expiresAt": at}
        for i, at in enumerate(ends)
    ]
    doc = Document(messages=messages)
    index = PlanIndex(limits)
    kept = index.refresh(doc, {}, handed={}, schedules={}, changed=(), now=START)
    full = plan(doc, {}, handed={}, schedules={}, now=START, limits=limits)
    assert [view(s) for s in kept.steps] == [view(s) for s in full.steps]
    assert [s.action.value for s in full.steps] == ["wait", "expire"]
