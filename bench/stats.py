"""Pure aggregation: every figure is the median of its runs, shown with their min and max."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over its runs: median, min, max, and how many runs measured it."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        """Runs that could not measure the figure (None, NaN) are left out and not counted."""
        got = sorted(v for v in values if v is not None and not math.isnan(v))
        if not got:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(got), got[0], got[-1], len(got))

    @property
    def missing(self) -> bool:
        return self.runs == 0


def aggregate(runs: Sequence[Mapping[str, float | None]]) -> dict[str, Spread]:
    """Per key, the spread of that key's value over the runs (a key a run lacks is None)."""
    keys = [k for run in runs for k in run]
    ordered = list(dict.fromkeys(keys))
    return {k: Spread.of(run.get(k) for run in runs) for k in ordered}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), linear between closest ranks; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / max of one run's values (e.g. lateness of each message)."""
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }
