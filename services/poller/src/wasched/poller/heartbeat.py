"""The poller's live state and its heartbeat (`wasched.heartbeat.poller`, docs/contracts.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wasched.common.clock import format_utc
from wasched.common.events import Heartbeat
from wasched.poller.plan import Counts

SERVICE = "poller"


@dataclass(slots=True)
class PollerState:
    active: bool = False
    counts: Counts = field(default_factory=Counts)
    scheduled_in_nats: int = 0
    store_mode: str = "conditional"
    store_reachable: bool = True
    etag_hit: bool = False
    cycle_seconds: float = 0.0
    last_success_at: datetime | None = None
    last_error: str | None = None
    rejected: Counter[str] = field(default_factory=Counter)

    def succeeded(self, at: datetime) -> None:
        self.last_success_at, self.last_error, self.store_reachable = at, None, True

    def failed(self, error: str, *, reachable: bool = True) -> None:
        self.last_error, self.store_reachable = error, reachable


def details(state: PollerState, s3_errors: dict[str, int]) -> dict[str, Any]:
    counts = state.counts
    return {
        "total": counts.total,
        "pending": counts.pending,
        "due": counts.due,
        "overdue": counts.overdue,
        "scheduledInNats": state.scheduled_in_nats,
        "oldestOverdueSeconds": counts.oldest_overdue_seconds,
        "invalid": counts.invalid,
        "storeMode": state.store_mode,
        "storeReachable": state.store_reachable,
        "etagHit": state.etag_hit,
        "cycleSeconds": round(state.cycle_seconds, 3),
        "lastSuccessAt": format_utc(state.last_success_at) if state.last_success_at else None,
        "lastError": state.last_error,
        "active": state.active,
        "s3Errors": dict(s3_errors),
        "rejectedEvents": dict(state.rejected),
    }


def heartbeat(state: PollerState, s3_errors: dict[str, int], now: datetime) -> Heartbeat:
    return Heartbeat(service=SERVICE, at=now, details=details(state, s3_errors))
