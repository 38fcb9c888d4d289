"""How long a burst takes at the default pace: the sender's pace rule run on a simulated clock.

300 messages due in the same minute take days at the default caps (sends an hour and a
day, number lookups an hour), too long to run for real in a benchmark. The sender's own
pure rule (`wasched.sender.pace`: gap plus jitter, hourly and daily caps, lookup pace;
jitter drawn from a seeded generator) is stepped on a fake clock instead; a short real
run calibrates the two delays the rule does not know (how soon the first send can
start, and how long each send itself takes) and checks the simulation against reality.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wasched.sender import pace as rule

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Pace:
    min_gap: float
    jitter: float
    max_per_hour: int
    max_per_day: int = 0
    lookup_gap: float = 0.0
    """Each message of the burst goes to a number not looked up before (the worst case)."""
    lookup_per_hour: int = 0
    pickup: float = 0.0
    """Seconds from the due time until the sender can first send (poll, dispatch, fetch)."""
    overhead: float = 0.0
    """Seconds each send itself takes; the pace counts its gap from the send's end."""

    def limits(self) -> rule.Limits:
        return rule.Limits(
            min_gap=self.min_gap,
            per_hour=self.max_per_hour,
            per_day=self.max_per_day,
            lookup_gap=self.lookup_gap,
            lookup_per_hour=self.lookup_per_hour,
        )


def wasched(count: int, pace: Pace, seed: int) -> list[float]:
    """Lateness of each of `count` messages (distinct texts and recipients) due at the same
    instant, in send order."""
    rng = random.Random(seed)
    limits = pace.limits()
    state = rule.PaceState()
    now = EPOCH + timedelta(seconds=pace.pickup)
    late = []
    for index in range(count):
        if limits.lookup_gap > 0 or limits.lookup_per_hour > 0:
            now = _after(rule.next_lookup(state, now, limits), now)
            state = rule.after_lookup(state, now, True, limits)
        start = _after(rule.next_send(state, now, limits), now)
        late.append((start - EPOCH).total_seconds())
        now = start + timedelta(seconds=pace.overhead)
        jitter = rng.uniform(0.0, pace.jitter) if pace.jitter > 0 else 0.0
        state = rule.after_send(state, now, f"text {index}", f"to {index}", jitter, limits)
    return late


def _after(wait: rule.Wait | None, now: datetime) -> datetime:
    return max(now, wait.until) if wait is not None else now


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
    return dataclasses.replace(pace, pickup=pickup, overhead=overhead)
