"""The poller's live state and its heartbeat (`wasched.heartbeat.poller`, docs/contracts.md).

The heartbeat has its own timer (every `HEARTBEAT_SECONDS`, active or standby), so that
a container probe listening a few seconds hears it whatever the poll interval is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wasched.common.clock import format_utc
from wasched.common.events import Heartbeat
from wasched.poller.counts import Counts

SERVICE = "poller"
HEARTBEAT_SECONDS = 5.0
SERIES_IN_HEARTBEAT = 5
"""The soonest repeating messages named in the heartbeat (id and next occurrence): enough
for the status page, small enough that the heartbeat stays a few hundred bytes."""


@dataclass(slots=True)
class PollerState:
    active: bool = False
    counts: Counts = field(default_factory=Counts)
    series: list[tuple[str, datetime]] = field(default_factory=list)
    """(id, next occurrence) of the soonest pending series."""
    scheduled_in_nats: int = 0
    store_mode: str = "conditional"
    store_versioning: bool | None = None
    store_reachable: bool = True
    etag_hit: bool = False
    cycle_seconds: float = 0.0
    cycle_cpu_seconds: float = 0.0
    """The process's CPU time over the last poll (all threads; lease renewals and writes
    that ran meanwhile included)."""
    decided: int = 0
    """Steps decided again at the last poll (the rest of the plan was kept)."""
    mirror_entries: int = 0
    mirror_bytes: int = 0
    writes: int = 0
    last_write_events: int = 0
    last_write_seconds: float = 0.0
    """The last document write: outcomes and receipts in it, and its wall time (read,
    change, render and upload)."""
    last_success_at: datetime | None = None
    last_error: str | None = None
    document_problem: str | None = None
    document_problem_since: datetime | None = None
    rejected: Counter[str] = field(default_factory=Counter)
    named: set[tuple[str, str]] = field(default_factory=set)
    """(where, reason) of ignored messages already named in the log."""

    def succeeded(self, at: datetime) -> None:
        self.last_success_at, self.last_error, self.store_reachable = at, None, True
        self.document_problem = self.document_problem_since = None

    def failed(self, error: str, *, reachable: bool = True) -> None:
        self.last_error, self.store_reachable = error, reachable

    def unavailable(self, problem: str, now: datetime) -> None:
        """The schedule is missing, empty or unreadable: nothing is decided until it is back."""
        if self.document_problem is None:
            self.document_problem_since = now
        self.document_problem = problem
        self.failed(problem)


def details(state: PollerState, s3_errors: dict[str, int], repairs: int = 0) -> dict[str, Any]:
    counts = state.counts
    since = state.document_problem_since
    return {
        "total": counts.total,
        "pending": counts.pending,
        "due": counts.due,
        "overdue": counts.overdue,
        "scheduledInNats": state.scheduled_in_nats,
        "oldestOverdueSeconds": counts.oldest_overdue_seconds,
        "invalid": counts.invalid,
        "ignored": dict(counts.ignored),
        "storeMode": state.store_mode,
        "storeVersioning": state.store_versioning,
        "storeReachable": state.store_reachable,
        "editsRepaired": repairs,
        "etagHit": state.etag_hit,
        "cycleSeconds": round(state.cycle_seconds, 3),
        "cycleCpuSeconds": round(state.cycle_cpu_seconds, 6),
        "decided": state.decided,
        "mirrorEntries": state.mirror_entries,
        "mirrorBytes": state.mirror_bytes,
        "documentWrites": state.writes,
        "lastWriteEvents": state.last_write_events,
        "lastWriteSeconds": round(state.last_write_seconds, 3),
        "lastSuccessAt": format_utc(state.last_success_at) if state.last_success_at else None,
        "lastError": state.last_error,
        "documentProblem": state.document_problem,
        "documentProblemSince": format_utc(since) if since else None,
        "active": state.active,
        "s3Errors": dict(s3_errors),
        "rejectedEvents": dict(state.rejected),
        "series": [{"id": key[:200], "nextAt": format_utc(at)} for key, at in state.series],
    }


def heartbeat(
    state: PollerState, s3_errors: dict[str, int], now: datetime, repairs: int = 0
) -> Heartbeat:
    return Heartbeat(service=SERVICE, at=now, details=details(state, s3_errors, repairs))
