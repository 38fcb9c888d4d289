"""What the health service remembers from heartbeats and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wasched.common.events import Heartbeat, Outcome
from wasched.common.messages import Status
from wasched.health.state import LiveState, new_cycle_seconds

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


def beat(service: str = "poller", **details: object) -> Heartbeat:
    return Heartbeat(service=service, details=details)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, beat(lastSuccessAt="t1", cycleSeconds=0.5), 0.5),
        (beat(lastSuccessAt="t1"), beat(lastSuccessAt="t1", cycleSeconds=0.5), None),
        (beat(lastSuccessAt="t1"), beat(lastSuccessAt="t2", cycleSeconds=1.5), 1.5),
        (None, beat(cycleSeconds=0.5), None),  # no successful cycle yet
        (None, beat(lastSuccessAt="t1"), None),
        (None, beat(lastSuccessAt="t1", cycleSeconds=-1), None),
        (None, beat(lastSuccessAt="t1", cycleSeconds="fast"), None),
    ],
)
def test_new_cycle_seconds(
    previous: Heartbeat | None, current: Heartbeat, expected: float | None
) -> None:
    assert new_cycle_seconds(previous, current) == expected


def test_a_standby_poller_does_not_speak_for_polling() -> None:
    state = LiveState(started_at=NOW)
    state.on_heartbeat(beat(active=False, pending=1, s3Errors={"timeout": 9}), NOW)
    assert state.poller is None and state.standby_poller is not None
    assert state.s3_errors.totals() == {}
    state.on_heartbeat(beat(active=True, pending=2, s3Errors={"timeout": 1}), NOW)
    assert state.poller is not None and state.poller.event.details["pending"] == 2
    assert state.s3_errors.totals() == {"timeout": 1}


def test_sender_restart_is_seen_from_sent_since_start() -> None:
    state = LiveState(started_at=NOW)
    for sent, rejected in ((5, 2), (1, 2)):  # same total after a restart: still new rejections
        state.on_heartbeat(
            beat("sender", sentSinceStart=sent, rejectedEvents={"wasched.send": rejected}), NOW
        )
    assert state.rejected.totals() == {"wasched.send": 4}


def test_outcomes_are_counted_once_per_id_and_status() -> None:
    state = LiveState(started_at=NOW)
    assert state.on_outcome(Outcome(id="a", status=Status.SENT))
    assert not state.on_outcome(Outcome(id="a", status=Status.SENT))
    assert state.on_outcome(Outcome(id="b", status=Status.FAILED))
    assert state.counts == {"sent": 1, "failed": 1}
    assert [o.id for o in state.recent] == ["b", "a"]
