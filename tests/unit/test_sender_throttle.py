"""Send pacing: minimum gap + jitter, hourly cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wasched.sender.throttle import Throttle, next_send_at

T0 = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("history", "now", "gap", "jitter", "cap", "expected"),
    [
        pytest.param([], 0, 3, 0, 120, 0, id="first send goes at once"),
        pytest.param([0], 1, 3, 0, 120, 3, id="waits out the gap"),
        pytest.param([0], 1, 3, 1.5, 120, 4.5, id="jitter adds to the gap"),
        pytest.param([0], 10, 3, 1.5, 120, 10, id="gap long past"),
        pytest.param([0, 10, 20], 25, 0, 0, 3, 3600, id="cap reached: oldest must age out"),
        pytest.param([0, 10, 20], 3601, 0, 0, 3, 3601, id="cap frees after an hour"),
        pytest.param([0, 10, 20], 25, 0, 0, 0, 25, id="cap 0 = unlimited"),
        pytest.param([-4000, 10], 11, 3, 0, 1, 3610, id="sends older than an hour do not count"),
    ],
)
def test_next_send_at(
    history: list[float],
    now: float,
    gap: float,
    jitter: float,
    cap: int,
    expected: float,
) -> None:
    got = next_send_at(
        [at(s) for s in history], at(now), min_gap=gap, jitter=jitter, max_per_hour=cap
    )
    assert got == at(expected)


def test_jitter_is_drawn_once_per_send_within_bounds() -> None:
    draws: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        draws.append((low, high))
        return 0.7

    throttle = Throttle(min_gap=2, max_jitter=1, max_per_hour=0, draw=draw)
    assert throttle.delay(at(0)) == 0
    throttle.record(at(0))
    assert draws == [(0.0, 1)]
    assert throttle.delay(at(1)) == pytest.approx(1.7)
    assert throttle.delay(at(1.5)) == pytest.approx(1.2)  # same jitter until the next send
    assert throttle.delay(at(2.7)) == 0
