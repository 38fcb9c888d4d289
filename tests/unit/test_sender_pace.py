"""The account's pace as tables: gap + jitter, hourly and daily caps, the ramp after a ban,
the same-text guard, and paced lookups that back off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wasched.sender import pace
from wasched.sender.pace import Limits, PaceState

T0 = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def state(sends: list[float] = (), jitter: float = 0.0, **extra: object) -> PaceState:  # type: ignore[assignment]
    return PaceState(sends=[at(s) for s in sends], jitter=jitter, **extra)


@pytest.mark.parametrize(
    ("sends", "now", "jitter", "limits", "expected", "why"),
    [
        pytest.param(
            [], 0, 0, Limits(min_gap=3, per_hour=120), None, None, id="first goes at once"
        ),
        pytest.param([0], 1, 0, Limits(min_gap=3), 3, "gap", id="waits out the gap"),
        pytest.param([0], 1, 1.5, Limits(min_gap=3), 4.5, "gap", id="jitter adds to the gap"),
        pytest.param([0], 10, 1.5, Limits(min_gap=3), None, None, id="gap long past"),
        pytest.param([0, 10, 20], 25, 0, Limits(per_hour=3), 3600, "hourly cap", id="hour cap"),
        pytest.param([0, 10, 20], 3601, 0, Limits(per_hour=3), None, None, id="hour cap frees"),
        pytest.param([0, 10, 20], 25, 0, Limits(), None, None, id="no caps"),
        pytest.param([-4000, 10], 11, 0, Limits(per_hour=1), 3610, "hourly cap", id="old sends"),
        pytest.param([0, 100], 200, 0, Limits(per_day=2), 86400, "daily cap", id="day cap"),
        pytest.param([0, 100], 86401, 0, Limits(per_day=2), None, None, id="a day later: frees"),
    ],
)
def test_next_send(
    sends: list[float],
    now: float,
    jitter: float,
    limits: Limits,
    expected: float | None,
    why: str | None,
) -> None:
    wait = pace.next_send(state(sends, jitter), at(now), limits)
    if expected is None:
        assert wait is None
    else:
        assert wait is not None and (wait.until, wait.why) == (at(expected), why)


@pytest.mark.parametrize(
    ("since_ban", "factor"),
    [(-10, 1.0), (0, 0.1), (1800, 0.55), (3600, 1.0), (99999, 1.0)],
)
def test_the_pace_ramps_up_after_a_ban(since_ban: float, factor: float) -> None:
    ban_over = state(ban_until=at(0))
    assert pace.ramp_factor(ban_over, at(since_ban), Limits(ramp=3600)) == pytest.approx(factor)


def test_right_after_a_ban_the_gap_is_ten_times_and_the_caps_a_tenth() -> None:
    limits = Limits(min_gap=2, per_hour=30, ramp=3600)
    after_ban = state([1], ban_until=at(0))
    wait = pace.next_send(after_ban, at(2), limits)
    assert wait is not None and "after a temporary ban" in wait.why
    assert abs((wait.until - at(1 + 20)).total_seconds()) < 0.2, "a 2 s gap at a tenth"
    three = state([1, 30, 60], ban_until=at(0))  # 10% of 30 an hour = 3
    wait = pace.next_send(three, at(90), limits)
    assert wait is not None and wait.until == at(1 + 3600)


def test_the_same_text_goes_to_a_few_recipients_then_waits() -> None:
    limits = Limits(same_text_max=2, same_text_window=3600)
    history = PaceState()
    for n, to in enumerate(["a@s.whatsapp.net", "b@s.whatsapp.net"]):
        history = pace.after_send(history, at(n), "Happy  new YEAR!", to, 0.0, limits)
    assert (
        pace.same_text_wait(history, "happy new year!", "a@s.whatsapp.net", at(5), limits) is None
    )
    wait = pace.same_text_wait(history, "Happy new year!", "c@s.whatsapp.net", at(5), limits)
    assert wait is not None and wait.until == at(3600)
    assert pace.same_text_wait(history, "Other text", "c@s.whatsapp.net", at(5), limits) is None
    later = pace.same_text_wait(history, "Happy new year!", "c@s.whatsapp.net", at(3600.5), limits)
    assert later is None, "the first recipient left the window"
    assert pace.same_text_wait(history, "Happy new year!", "c@x", at(5), Limits()) is None


def test_recipients_are_stored_hashed() -> None:
    limits = Limits(same_text_max=1)
    history = pace.after_send(PaceState(), at(0), "hi", "447957189696@s.whatsapp.net", 0, limits)
    assert "447957189696" not in history.to_json().decode()


def test_history_stays_bounded() -> None:
    limits = Limits(per_hour=3, per_day=5, same_text_max=2, same_text_window=60)
    history = PaceState()
    for n in range(50):
        history = pace.after_send(history, at(n * 10), f"text {n}", f"{n}@x", 0.0, limits)
    assert len(history.sends) == 5
    assert len(history.texts) <= 7, "texts older than the window are dropped"


def test_lookups_are_paced_capped_and_back_off() -> None:
    limits = Limits(lookup_gap=5, lookup_per_hour=2, lookup_backoff=30)
    history = pace.after_lookup(PaceState(), at(0), True, limits)
    wait = pace.next_lookup(history, at(1), limits)
    assert wait is not None and wait.until == at(5)
    history = pace.after_lookup(history, at(5), True, limits)
    wait = pace.next_lookup(history, at(10), limits)
    assert wait is not None and (wait.until, wait.why) == (at(3600), "lookup hourly cap")
    failing = PaceState()
    for n, backoff in enumerate([30, 60, 120]):
        failing = pace.after_lookup(failing, at(n), False, Limits(lookup_backoff=30))
        assert failing.lookup_retry_at == at(n + backoff)
    recovered = pace.after_lookup(failing, at(500), True, limits)
    assert (recovered.lookup_failures, recovered.lookup_retry_at) == (0, None)


def test_lookup_back_off_stops_growing_at_an_hour() -> None:
    failing = PaceState(lookup_failures=20)
    failing = pace.after_lookup(failing, at(0), False, Limits(lookup_backoff=30))
    assert failing.lookup_retry_at == at(3600)
