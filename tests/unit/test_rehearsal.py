"""A rehearsal (a dry run over a schedule it does not own) shares nothing a real run reads.

Pure tables over the settings that make a run a rehearsal, the two lanes of NATS names,
the NATS permissions for the rehearsal's names, the sender's consumers and journal, and
the status page's label. The whole flow runs end to end in tests/e2e/test_rehearsal.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wasched.common import topology
from wasched.common.events import Heartbeat
from wasched.common.permissions import CLIENT, HEALTH, POLLER, SENDER, permissions
from wasched.common.settings import SettingsError, load_settings
from wasched.health.checks import evaluate
from wasched.health.page import render_page
from wasched.health.state import LiveState
from wasched.sender.config import load_sender_settings
from wasched.sender.connection import Connection
from wasched.sender.status import Stats, heartbeat_details
from wasched.sender.worker import CONSUMERS, consumers

REAL, REHEARSAL = topology.REAL, topology.REHEARSAL
NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("transport", "mode", "rehearsal"),
    [
        ("dryrun", None, True),  # the default: a dry run never records
        ("dryrun", "rehearsal", True),
        ("dryrun", "record", False),  # the local stack, the tests: a schedule of its own
        ("neonize", None, False),
        ("neonize", "rehearsal", False),  # only a dry run rehearses
    ],
)
def test_a_dry_run_is_a_rehearsal_unless_it_records(
    transport: str, mode: str | None, rehearsal: bool
) -> None:
    extra = {"dryrun_mode": mode} if mode else {}
    settings = load_settings(_env_file=None, whatsapp_transport=transport, **extra)
    assert settings.rehearsal is rehearsal
    assert topology.lane(settings.rehearsal) is (REHEARSAL if rehearsal else REAL)


def test_a_misspelt_dryrun_mode_stops_the_service_naming_it() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, dryrun_mode="recrod")
    assert "DRYRUN_MODE='recrod': Input should be 'rehearsal' or 'record'" in str(caught.value)


NAMES = [
    field.name
    for field in dataclasses.fields(topology.Lane)
    if field.name not in {"rehearsal", "msg_id_prefix"}
]


@pytest.mark.parametrize("name", NAMES)
def test_the_lanes_share_no_name(name: str) -> None:
    """No subject, durable, lease key, term or bucket of a rehearsal is one a real run uses."""
    assert getattr(REAL, name) != getattr(REHEARSAL, name)


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching (`*` one token, `>` the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for n, token in enumerate(want):
        if token == ">":
            return len(have) > n
        if n >= len(have) or token not in ("*", have[n]):
            return False
    return len(want) == len(have)


@pytest.mark.parametrize(("lane", "other"), [(REAL, REHEARSAL), (REHEARSAL, REAL)])
def test_no_consumer_or_scan_of_one_lane_reaches_the_other(
    lane: topology.Lane, other: topology.Lane
) -> None:
    theirs = [other.due, other.fire, other.outcome, other.term, other.schedule_subject("m-1")]
    for pattern in lane.subjects:
        assert not any(_matches(pattern, subject) for subject in theirs), pattern


def test_every_lane_subject_is_stored_and_only_the_real_ones_are_for_other_systems() -> None:
    assert set(REAL.subjects) | set(REHEARSAL.subjects) <= set(topology.STREAM_SUBJECTS)
    assert set(REHEARSAL.subjects).isdisjoint(topology.IN_SUBJECTS)
    for subject in REHEARSAL.subjects:
        assert topology.stream_of(subject) == topology.STREAM  # no message schedules elsewhere


@pytest.mark.parametrize(
    ("lane", "other"), [(REAL, REHEARSAL), (REHEARSAL, REAL)], ids=["real", "rehearsal"]
)
@pytest.mark.parametrize("version", ["0123456789abcdef", None])
def test_a_hand_over_id_is_read_back_by_its_own_lane_only(
    lane: topology.Lane, other: topology.Lane, version: str | None
) -> None:
    """The duplicate window cannot drop a real hand-over after a rehearsed one, and a
    rebuilt book never counts the other lane's hand-overs as its own."""
    msg_id = lane.due_msg_id("m-1", version, again=2 if version else 0)
    assert msg_id != other.due_msg_id("m-1", version, again=2 if version else 0)
    assert lane.parse_due_msg_id(msg_id) == ("m-1", version)
    assert other.parse_due_msg_id(msg_id) is None
    assert lane.msg_id_header("outcome", "m-1:sent") != other.msg_id_header("outcome", "m-1:sent")


def test_the_real_lane_keeps_the_names_of_round_2() -> None:
    assert REAL.due_msg_id("m-1", "0123456789abcdef") == "due:m-1:0123456789abcdef"
    assert REAL.msg_id_header("outcome", "m-1:sent") == {"Nats-Msg-Id": "outcome:m-1:sent"}
    assert REAL.schedule_subject("m/1") == topology.schedule_subject("m/1")


def _may(role: str, kind: str, subject: str) -> bool:
    perms = permissions(role)
    granted = perms.publish if kind == "publish" else perms.subscribe
    return subject in (granted or ())


@pytest.mark.parametrize(
    ("role", "may"),
    [
        (POLLER, {REHEARSAL.due, f"{REHEARSAL.sched_prefix}*", REHEARSAL.term, REHEARSAL.outcome}),
        (SENDER, {REHEARSAL.outcome}),
        (HEALTH, set()),
        (CLIENT, set()),  # other systems never see, nor fake, a rehearsal's traffic
    ],
)
def test_who_may_publish_into_a_rehearsal(role: str, may: set[str]) -> None:
    published = {s for s in REHEARSAL.subjects if _may(role, "publish", s)}
    assert published == may
    assert not _may(role, "subscribe", REHEARSAL.outcome)


@pytest.mark.parametrize(
    ("role", "durable", "stream_subject"),
    [
        (POLLER, REHEARSAL.poller_fire, REHEARSAL.fire),
        (POLLER, REHEARSAL.poller_outcome, REHEARSAL.outcome),
        (SENDER, REHEARSAL.sender_due, REHEARSAL.due),
    ],
)
def test_each_rehearsal_durable_is_granted_to_its_service_only(
    role: str, durable: str, stream_subject: str
) -> None:
    fetch = f"$JS.API.CONSUMER.MSG.NEXT.{topology.STREAM}.{durable}"
    assert {r for r in (POLLER, SENDER, HEALTH, CLIENT) if _may(r, "publish", fetch)} == {role}


def test_a_rehearsing_sender_consumes_its_own_hand_overs_and_no_requests() -> None:
    assert consumers(REHEARSAL) == ((REHEARSAL.sender_due, REHEARSAL.due),)
    assert consumers(REAL) == CONSUMERS
    assert (topology.SENDER_SEND, topology.SEND) in CONSUMERS


@pytest.mark.parametrize(
    ("journal", "mode", "expected"),
    [
        (None, "rehearsal", "data/sender-journal.rehearsal.jsonl"),
        (None, "record", "data/sender-journal.jsonl"),
        ("/var/lib/w/journal.jsonl", "rehearsal", "/var/lib/w/journal.rehearsal.jsonl"),
        ("/var/lib/w/journal.jsonl", "record", "/var/lib/w/journal.jsonl"),
    ],
)
def test_a_rehearsal_journals_apart_from_the_real_sender(
    journal: str | None, mode: str, expected: str
) -> None:
    """A real sender settles its journal into the real ledger at start: a rehearsed send must
    never be found there, even with `SENDER_JOURNAL` set the same for both runs."""
    extra = {"sender_journal": Path(journal)} if journal else {}
    settings = load_sender_settings(
        _env_file=None, whatsapp_transport="dryrun", dryrun_mode=mode, **extra
    )
    assert str(settings.journal_path) == expected


@pytest.mark.parametrize(("rehearsal", "says"), [(True, "3 rehearsed"), (False, "3 sent")])
def test_the_status_page_does_not_call_rehearsed_sends_sent(rehearsal: bool, says: str) -> None:
    stats = Stats(sent_since_start=3, rehearsal=rehearsal)
    details = heartbeat_details(Connection(state="connected"), "dryrun", stats)
    state = LiveState(started_at=NOW)
    state.on_heartbeat(Heartbeat(service="sender", at=NOW, details=details), NOW)
    settings = load_settings(_env_file=None)
    html = render_page(state, evaluate(None, None, NOW, settings), NOW, settings, nats_up=True)
    assert f"{says} since the sender started" in html
    assert ("nothing is recorded" in html) is rehearsal
