"""What the health service has heard from NATS: the latest of each live signal.

Handlers feed events in; the checks, the metrics collector and the page read
the result. Times are when *we* received a signal, so another host's clock
cannot make a dead service look alive.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from wasched.common import topology
from wasched.common.events import Heartbeat, Outcome, Receipt, SenderStatus
from wasched.health.totals import CumulativeTotals, clean_counts

T = TypeVar("T")

RECENT_OUTCOMES = 20
REMEMBERED_KEYS = 50_000
POLLER = "poller"
SENDER = "sender"
SUBJECTS = frozenset(
    {
        topology.DUE,
        topology.FIRE,
        topology.SEND,
        topology.SCHEDULE,
        topology.CANCEL,
        topology.OUTCOME,
        topology.RECEIPT,
        topology.PAIR_REQUEST,
    }
)
"""The `subject` label's vocabulary; anything else is counted as `other`."""


@dataclass(frozen=True, slots=True)
class Seen(Generic[T]):
    event: T
    received_at: datetime


def age(seen: Seen[object], now: datetime) -> float:
    """Seconds since we heard it (never negative)."""
    return max(0.0, (now - seen.received_at).total_seconds())


def is_active(heartbeat: Heartbeat) -> bool:
    """A standby poller (no lease) heartbeats too; only the active one speaks for polling."""
    return heartbeat.details.get("active", True) is not False


def number(details: dict[str, Any], key: str) -> float | None:
    value = details.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def new_cycle_seconds(previous: Heartbeat | None, current: Heartbeat) -> float | None:
    """The duration of a poll cycle that finished since `previous`, if one did.

    Heartbeats also come between cycles, so a cycle counts once: when
    `lastSuccessAt` moves.
    """
    success = current.details.get("lastSuccessAt")
    seconds = number(current.details, "cycleSeconds")
    if not success or seconds is None or seconds < 0:
        return None
    if previous is not None and previous.details.get("lastSuccessAt") == success:
        return None
    return seconds


class _Remembered:
    """A bounded set: counting must be idempotent against redelivery."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._size = size

    def add(self, key: tuple[str, str]) -> bool:
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True


@dataclass
class LiveState:
    started_at: datetime
    poller: Seen[Heartbeat] | None = None
    standby_poller: Seen[Heartbeat] | None = None
    sender: Seen[Heartbeat] | None = None
    status: Seen[SenderStatus] | None = None
    recent: deque[Outcome] = field(default_factory=lambda: deque(maxlen=RECENT_OUTCOMES))
    counts: dict[str, int] = field(default_factory=dict)
    s3_errors: CumulativeTotals = field(default_factory=CumulativeTotals)
    rejected: CumulativeTotals = field(default_factory=CumulativeTotals)
    _seen_outcomes: _Remembered = field(default_factory=lambda: _Remembered(REMEMBERED_KEYS))
    _seen_receipts: _Remembered = field(default_factory=lambda: _Remembered(REMEMBERED_KEYS))

    def on_heartbeat(self, heartbeat: Heartbeat, now: datetime) -> float | None:
        """Record a heartbeat; returns a finished poll cycle's seconds, if any."""
        seen = Seen(heartbeat, now)
        source = _source(heartbeat)
        if heartbeat.service == POLLER:
            if not is_active(heartbeat):
                self.standby_poller = seen
                return None
            previous, self.poller = self.poller, seen
            self.s3_errors.update(source, clean_counts(heartbeat.details.get("s3Errors")))
            self.rejected.update(
                source, clean_counts(heartbeat.details.get("rejectedEvents"), SUBJECTS)
            )
            return new_cycle_seconds(previous.event if previous else None, heartbeat)
        if heartbeat.service == SENDER:
            restarted = _fell(self.sender, heartbeat, "sentSinceStart")
            self.sender = seen
            counts = clean_counts(heartbeat.details.get("rejectedEvents"), SUBJECTS)
            self.rejected.update(source, counts, restarted=restarted)
        return None

    def on_status(self, status: SenderStatus, now: datetime) -> None:
        self.status = Seen(status, now)

    def on_outcome(self, outcome: Outcome) -> bool:
        """Record an outcome; False when this (id, status) was already counted."""
        if not self._seen_outcomes.add((outcome.id, outcome.status.value)):
            return False
        self.recent.appendleft(outcome)
        self.counts[outcome.status.value] = self.counts.get(outcome.status.value, 0) + 1
        return True

    def on_receipt(self, receipt: Receipt) -> bool:
        if not self._seen_receipts.add((receipt.id, receipt.kind)):
            return False
        key = f"receipt:{receipt.kind}"
        self.counts[key] = self.counts.get(key, 0) + 1
        return True


def _source(heartbeat: Heartbeat) -> str:
    """Totals are per process run when the service says which run it is."""
    run = heartbeat.details.get("instance") or heartbeat.details.get("startedAt")
    return f"{heartbeat.service}/{run}" if isinstance(run, str) and run else heartbeat.service


def _fell(previous: Seen[Heartbeat] | None, current: Heartbeat, key: str) -> bool:
    if previous is None:
        return False
    before, after = number(previous.event.details, key), number(current.details, key)
    return before is not None and after is not None and after < before
