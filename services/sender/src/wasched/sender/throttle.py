"""Send pacing: a minimum gap plus jitter between sends, and an hourly cap.

WhatsApp flags accounts that send in bursts, so the pace is global (both input
subjects share it). `next_send_at` is the pure rule; `Throttle` keeps the history
and draws the jitter once per send so every caller sees the same next time.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)


def next_send_at(
    history: Sequence[datetime],
    now: datetime,
    *,
    min_gap: float,
    jitter: float,
    max_per_hour: int,
) -> datetime:
    """Earliest moment the next send may start. `history` is ascending; 0 = no hourly cap."""
    earliest = now
    if history:
        earliest = max(earliest, history[-1] + timedelta(seconds=min_gap + jitter))
    if max_per_hour > 0:
        recent = [t for t in history if t > now - HOUR]
        if len(recent) >= max_per_hour:
            earliest = max(earliest, recent[-max_per_hour] + HOUR)
    return earliest


class Throttle:
    def __init__(
        self,
        *,
        min_gap: float,
        max_jitter: float,
        max_per_hour: int,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.min_gap = min_gap
        self.max_jitter = max_jitter
        self.max_per_hour = max_per_hour
        self._draw = draw
        self._history: deque[datetime] = deque(maxlen=max(max_per_hour, 1))
        self._jitter = 0.0

    def next_at(self, now: datetime) -> datetime:
        return next_send_at(
            self._history,
            now,
            min_gap=self.min_gap,
            jitter=self._jitter,
            max_per_hour=self.max_per_hour,
        )

    def delay(self, now: datetime) -> float:
        return max(0.0, (self.next_at(now) - now).total_seconds())

    def record(self, at: datetime) -> None:
        """A send ended at `at` (successful or not: WhatsApp may have seen it either way)."""
        self._history.append(at)
        self._jitter = self._draw(0.0, self.max_jitter) if self.max_jitter > 0 else 0.0
