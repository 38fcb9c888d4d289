"""How long a burst takes at the default throttle: the pacing rule run on a simulated clock.

300 messages due in the same minute take over two hours at 120 sends an hour,
too long to run for real in a benchmark. The sender's own rule
(`wasched.sender.throttle.Throttle`, jitter drawn from a seeded generator) is
stepped on a fake clock instead; a short real run calibrates the two delays the
rule does not know (how soon the first send can start, and how long each send
itself takes) and checks the simulation against reality.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wasched.sender.throttle import Throttle

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Pace:
    min_gap: float
    jitter: float
    max_per_hour: int
    pickup: float = 0.0
    """Seconds from the due time until the sender can first send (poll, dispatch, fetch)."""
    overhead: float = 0.0
    """Seconds each send itself takes; the throttle counts its gap from the send's end."""


def wasched(count: int, pace: Pace, seed: int) -> list[float]:
    """Lateness of each of `count` messages due at the same instant, in send order."""
    rng = random.Random(seed)
    throttle = Throttle(
        min_gap=pace.min_gap,
        max_jitter=pace.jitter,
        max_per_hour=pace.max_per_hour,
        draw=rng.uniform,
    )
    now = EPOCH + timedelta(seconds=pace.pickup)
    late = []
    for _ in range(count):
        start = max(now, throttle.next_at(now))
        late.append((start - EPOCH).total_seconds())
        now = start + timedelta(seconds=pace.overhead)
        throttle.record(now)
    return late


def baseline(count: int, interval: float, per_send: float, seed: int) -> list[float]:
    """The old loop: the burst waits for the next poll (anywhere in the interval), then all
    of it goes out back to back, `per_send` seconds each."""
    phase = random.Random(seed).uniform(0, interval)
    return [phase + i * per_send for i in range(count)]


def calibrate(runs: list[list[float]], pace: Pace) -> Pace:
    """`pickup` and `overhead` from real runs (each: lateness in send order, below the cap):
    the first send's lateness, and each gap beyond the throttle's mean gap (min_gap + jitter/2)."""
    firsts = sorted(run[0] for run in runs if run)
    gaps = [b - a for run in runs for a, b in itertools.pairwise(run)]
    pickup = firsts[len(firsts) // 2] if firsts else 0.0
    mean_gap = sum(gaps) / len(gaps) if gaps else pace.min_gap + pace.jitter / 2
    overhead = max(0.0, mean_gap - pace.min_gap - pace.jitter / 2)
    return Pace(pace.min_gap, pace.jitter, pace.max_per_hour, pickup, overhead)
