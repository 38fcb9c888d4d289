"""When a decision can next change while its inputs stay the same (`index.PlanIndex`
decides a message again at that instant, or when an input changes).

Every time rule of `plan.decide` turns true at an instant and stays true as time goes on
(due, within the horizon, a schedule overdue, expired, too late, a claim gone stale):
earlier is always safe, later never is. A new kind of decision plugs in with its own such
function (a series: `recurring.SeriesDecision.changes_at`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.poller.limits import Limits
from wasched.poller.plan import Action, Step

REPEATED = frozenset(
    {Action.RESTORE, Action.REJECT, Action.EXPIRE, Action.DUPLICATE, Action.INTERRUPT}
)
"""Steps a full plan repeats at every poll until their inputs change (their `Outcome`s
carry the time of the decision, or their effect is a write that may not have landed)."""


def next_change(
    step: Step | None, entry: LedgerEntry | None, *, now: datetime, limits: Limits
) -> datetime | None:
    """When `decide_message` could next give another step for the same inputs (the message,
    its ledger entry, its hand-over and schedule), or None: only a change of those can.

    Every time rule of `decide` turns true at an instant and stays true as time goes on
    (due, within the horizon, a schedule overdue, expired, too late, a claim gone stale),
    so the next change is the earliest of those instants still after `now`. A step that
    records or restores an outcome answers `now`: a full plan repeats it at every poll until
    its inputs change, and so must a plan kept between polls (`index.PlanIndex`)."""
    if step is None:
        return None
    if step.action in REPEATED:
        return now
    if step.action is Action.HOLD and entry is not None and entry.state is LedgerState.CLAIMED:
        return _shifted(entry.at, limits.claim_stale, now)
    msg = step.message
    if msg is None:
        return None
    at = msg.scheduled_time
    starting = [at, _shifted(at, -limits.horizon, now), _shifted(at, limits.fire_grace, now)]
    after = [msg.expires_at]  # true just after it (`now > expires_at`): due at it
    if limits.max_lateness is not None:
        after.append(_shifted(at, limits.max_lateness, now))
    ahead = [t for t in starting if t is not None and t > now]
    ahead += [t for t in after if t is not None and t >= now]
    return min(ahead, default=None)


def _shifted(moment: datetime, by: timedelta, now: datetime) -> datetime | None:
    """`moment + by`; past the calendar's end it never comes (None), before its start it
    has come (`now`)."""
    try:
        return moment + by
    except OverflowError:
        return None if by > timedelta(0) else now
