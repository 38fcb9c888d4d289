"""The /health verdict: pure functions of what was last heard, `now` and the settings.

Silence is the failure this exists to catch (the old system once sat two hours
with no scheduler and nobody knew), so a signal never heard, or heard too long
ago, fails its check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from wasched.common.clock import parse_utc
from wasched.common.events import Heartbeat, SenderStatus
from wasched.common.settings import Settings
from wasched.health.state import Seen, age, number

MIN_STALE_SECONDS = 15.0
"""Services heartbeat at least every 5 s: three missed beats is silence."""
SENDER_STALE_SECONDS = 15.0
"""The sender publishes its status on every change and every 5 s."""

POLLER = "poller_heartbeat"
SENDER = "sender_state"
OVERDUE = "overdue_messages"
STORE = "store_reachable"
DOCUMENT = "schedule_document"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def stale_after(settings: Settings) -> float:
    """Poller heartbeat age that counts as silence: 3 poll intervals unless configured."""
    if settings.health_stale_seconds is not None:
        return settings.health_stale_seconds
    return max(3 * settings.poll_interval_seconds, MIN_STALE_SECONDS)


def evaluate(
    poller: Seen[Heartbeat] | None,
    sender: Seen[SenderStatus] | None,
    now: datetime,
    settings: Settings,
) -> list[CheckResult]:
    return [
        poller_check(poller, now, stale_after(settings)),
        sender_check(sender, now),
        overdue_check(poller, settings.overdue_alert_seconds),
        store_check(poller),
        document_check(poller, now, stale_after(settings)),
    ]


def healthy(results: list[CheckResult]) -> bool:
    return all(result.ok for result in results)


def poller_check(poller: Seen[Heartbeat] | None, now: datetime, limit: float) -> CheckResult:
    if poller is None:
        return CheckResult(POLLER, False, "no heartbeat from an active poller since start")
    seconds = age(poller, now)
    if seconds > limit:
        return CheckResult(POLLER, False, f"last heartbeat {seconds:.0f}s ago (limit {limit:.0f}s)")
    return CheckResult(POLLER, True, f"last heartbeat {seconds:.1f}s ago (limit {limit:.0f}s)")


def sender_check(sender: Seen[SenderStatus] | None, now: datetime) -> CheckResult:
    if sender is None:
        return CheckResult(SENDER, False, "no status from the sender since start")
    seconds = age(sender, now)
    if seconds > SENDER_STALE_SECONDS:
        return CheckResult(
            SENDER, False, f"last status {seconds:.0f}s ago (limit {SENDER_STALE_SECONDS:.0f}s)"
        )
    status = sender.event
    if status.state == "connected":
        return CheckResult(SENDER, True, "connected")
    return CheckResult(SENDER, False, _sender_problem(status))


def _sender_problem(status: SenderStatus) -> str:
    hint = {
        "pairing": "WhatsApp needs linking: scan the QR code on the status page",
        "logged_out": "logged out of WhatsApp: link the account again",
        "banned": "WhatsApp banned this account",
        "replaced": "another client replaced this WhatsApp session",
        "outdated": "WhatsApp client version is outdated",
    }.get(status.state, status.state)
    extra = [hint]
    if status.until is not None:
        extra.append(f"until {status.until.isoformat()}")
    if status.detail:
        extra.append(status.detail[:200])
    return "; ".join(extra)


def overdue_check(poller: Seen[Heartbeat] | None, limit: float) -> CheckResult:
    if poller is None:
        return CheckResult(OVERDUE, False, "unknown: no poller heartbeat")
    details = poller.event.details
    oldest = number(details, "oldestOverdueSeconds")
    count = number(details, "overdue")
    if oldest is None and count is None:
        return CheckResult(OVERDUE, False, "unknown: the poller does not report overdue")
    if not oldest and not count:
        return CheckResult(OVERDUE, True, "no pending message is overdue")
    if oldest is None:
        return CheckResult(OVERDUE, False, f"{count:.0f} overdue, for how long not reported")
    text = f"{count or 0:.0f} overdue, oldest by {oldest:.0f}s (limit {limit:.0f}s)"
    return CheckResult(OVERDUE, oldest <= limit, text)


def store_check(poller: Seen[Heartbeat] | None) -> CheckResult:
    if poller is None:
        return CheckResult(STORE, False, "unknown: no poller heartbeat")
    details = poller.event.details
    reachable = details.get("storeReachable")
    if reachable is True:
        return CheckResult(STORE, True, f"reachable ({details.get('storeMode', 'unknown')} writes)")
    error = details.get("lastError")
    reason = str(error)[:200] if error else "the poller reports it unreachable"
    return CheckResult(STORE, False, f"unreachable: {reason}")


def document_check(poller: Seen[Heartbeat] | None, now: datetime, limit: float) -> CheckResult:
    """The schedule missing, empty or unreadable for longer than a moment: nothing is sent."""
    if poller is None:
        return CheckResult(DOCUMENT, False, "unknown: no poller heartbeat")
    details = poller.event.details
    problem = details.get("documentProblem")
    if not problem:
        return CheckResult(DOCUMENT, True, "readable")
    try:
        since = parse_utc(details.get("documentProblemSince"))
    except ValueError:
        since = poller.received_at
    seconds = (now - since).total_seconds()
    text = f"unavailable for {seconds:.0f}s (limit {limit:.0f}s): {str(problem)[:200]}"
    return CheckResult(DOCUMENT, seconds <= limit, text)
