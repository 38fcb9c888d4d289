"""The poller's limits: how far ahead it schedules, how late a message may still go.

Pure functions of settings and `now`, shared by the poll and the fire checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from wasched.common.clock import format_utc
from wasched.common.messages import ScheduledMessage
from wasched.common.settings import Settings
from wasched.poller.lease import lease_ttl

CLAIM_STALE = timedelta(minutes=10)
"""A claim this old with no outcome means the sender died mid-send (WhatsApp's own timeout is 75 s)."""

OVERDUE_AFTER = timedelta(seconds=60)
"""A pending message this far past its time counts as overdue in the heartbeat."""

FIRE_GRACE = timedelta(seconds=0.5)
"""How long after its time a schedule may still fire before the poller hands the message over
itself. NATS fires within ~0.3 s, but its timer can skip a schedule due moments after one it
just fired (seen: 2 s late under load, 10 s in CI); `service` wakes a poll for it."""

MIN_CATCH_UP_GRACE = timedelta(seconds=60)
"""The least time a series' occurrence is still sent after the next one fell due (a restart)."""


def catch_up_grace(poll_interval: float) -> timedelta:
    """How long after the next occurrence fell due an earlier one is still sent, late: twice
    the time a restarted or standby poller takes to become active, at least a minute. A
    restart of the poller or the sender is not downtime; only after longer are earlier
    occurrences `missed` (a series never sends a burst)."""
    return max(timedelta(seconds=2 * lease_ttl(poll_interval)), MIN_CATCH_UP_GRACE)


@dataclass(frozen=True, slots=True)
class Limits:
    horizon: timedelta
    max_lateness: timedelta | None
    claim_stale: timedelta = CLAIM_STALE
    overdue_after: timedelta = OVERDUE_AFTER
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))
    """`DISPLAY_TIMEZONE`: where a series without `timezone` keeps its wall-clock time."""
    media_prefix: str | None = None
    """Where a `media.key` must point (None: anywhere; the sender checks again)."""
    grace: timedelta = MIN_CATCH_UP_GRACE
    """`catch_up_grace`: how long a series' occurrence may trail the next one and still go."""
    fire_grace: timedelta = FIRE_GRACE

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        lateness = settings.max_lateness_seconds
        return cls(
            horizon=timedelta(seconds=settings.schedule_horizon_seconds),
            max_lateness=timedelta(seconds=lateness) if lateness > 0 else None,
            zone=settings.zone,
            media_prefix=settings.media_prefix,
            grace=catch_up_grace(settings.poll_interval_seconds),
        )


def settings_problem(settings: Settings) -> str | None:
    """A horizon shorter than two polls would let a message due between polls go out late."""
    horizon, interval = settings.schedule_horizon_seconds, settings.poll_interval_seconds
    if horizon >= 2 * interval:
        return None
    return (
        f"SCHEDULE_HORIZON_SECONDS={horizon:g} must be at least twice "
        f"POLL_INTERVAL_SECONDS={interval:g}, or messages due between two polls go out late"
    )


def expiry_reason(msg: ScheduledMessage, now: datetime, limits: Limits) -> str | None:
    if msg.expires_at is not None and now > msg.expires_at:
        return f"not sent: past its expiresAt ({format_utc(msg.expires_at)})"
    if limits.max_lateness is not None and now - msg.scheduled_time > limits.max_lateness:
        late = now - msg.scheduled_time
        return (
            f"not sent: {_span(late)} late, more than the "
            f"{_span(limits.max_lateness)} allowed (MAX_LATENESS_SECONDS)"
        )
    return None


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    parts += [f"{minutes} min" if minutes else "", f"{secs} s" if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0 s"
