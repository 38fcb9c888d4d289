"""Cumulative counts reported in heartbeats, turned into counters that never go down.

A service's heartbeat carries totals since *its* start. When it restarts they
begin again at 0; a Prometheus counter must not fall, so what a previous run
had reached is carried forward. A restart shows as any total falling or a key
vanishing (totals never shrink within one run), or is told by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

MAX_KEYS = 50
OTHER = "other"
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.:\-]{0,63}")
_DIGIT_RUN = re.compile(r"\d{5,}")


def clean_counts(raw: object, known: Collection[str] | None = None) -> dict[str, float]:
    """Well-formed `{key: count}` pairs; keys that could leak data or explode cardinality
    (outside `known`, odd characters, long digit runs, past `MAX_KEYS`) are summed as `other`."""
    if not isinstance(raw, Mapping):
        return {}
    counts: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            continue
        label = key if _acceptable(key, known) else OTHER
        if label not in counts and len(counts) >= MAX_KEYS:
            label = OTHER
        counts[label] = counts.get(label, 0.0) + float(value)
    return counts


def _acceptable(key: object, known: Collection[str] | None) -> bool:
    if not isinstance(key, str):
        return False
    if known is not None:
        return key in known
    return bool(_LABEL.fullmatch(key)) and not _DIGIT_RUN.search(key)


@dataclass(slots=True)
class _Source:
    last: dict[str, float] = field(default_factory=dict)
    carried: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class CumulativeTotals:
    """Monotonic totals per key, summed over sources (e.g. `poller`, `sender`)."""

    _sources: dict[str, _Source] = field(default_factory=dict)

    def update(self, source: str, counts: Mapping[str, float], restarted: bool = False) -> None:
        state = self._sources.setdefault(source, _Source())
        if restarted or _looks_restarted(state.last, counts):
            for key, value in state.last.items():
                state.carried[key] = state.carried.get(key, 0.0) + value
            state.last = {}
        state.last.update(counts)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for state in self._sources.values():
            for part in (state.carried, state.last):
                for key, value in part.items():
                    out[key] = out.get(key, 0.0) + value
        return out


def _looks_restarted(last: Mapping[str, float], now: Mapping[str, float]) -> bool:
    return any(key not in now or now[key] < value for key, value in last.items())
