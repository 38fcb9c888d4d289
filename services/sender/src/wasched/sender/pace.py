"""The account's pace: when the next send and the next number lookup may happen.

Pure: the history (`PaceState`, kept in NATS KV by `account.py`, so a restart loop cannot
reset it) and `now` in, the earliest moment out. Each rule answers a pattern that
WhatsApp bans accounts for (sources in docs/sender.md):

- a minimum gap plus a random jitter between sends; at most N sends an hour and M a day;
- after a temporary ban the pace starts at a tenth and grows back to full over the ramp;
- one text goes to at most K different recipients per window;
- number lookups have their own gap and hourly cap, and back off (doubling) when they fail.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import AwareDatetime, Field

from wasched.common.events import Event

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RAMP_START = 0.1
"""Right after a ban, the pace is this fraction of the configured one."""
MAX_LOOKUP_BACKOFF = HOUR


class PaceState(Event):
    """Stored as JSON in the `wasched-account` bucket under `pace`; lists are ascending."""

    sends: list[AwareDatetime] = Field(default_factory=list)
    jitter: float = 0.0
    """Drawn after the last send, so every instance sees the same next time."""
    lookups: list[AwareDatetime] = Field(default_factory=list)
    lookup_failures: int = 0
    lookup_retry_at: AwareDatetime | None = None
    ban_until: AwareDatetime | None = None
    """When the last temporary ban ended (or ends)."""
    texts: dict[str, dict[str, AwareDatetime]] = Field(default_factory=dict)
    """Text fingerprint → recipient tag → when it went there, within the window."""


@dataclass(frozen=True, slots=True)
class Limits:
    min_gap: float = 0.0
    per_hour: int = 0
    per_day: int = 0
    ramp: float = 0.0
    lookup_gap: float = 0.0
    lookup_per_hour: int = 0
    lookup_backoff: float = 30.0
    same_text_max: int = 0
    same_text_window: float = 3600.0


@dataclass(frozen=True, slots=True)
class Wait:
    until: datetime
    why: str


def ramp_factor(state: PaceState, now: datetime, limits: Limits) -> float:
    """1 normally; from RAMP_START up to 1 over `limits.ramp` seconds after a ban ended."""
    if limits.ramp <= 0 or state.ban_until is None or now < state.ban_until:
        return 1.0
    done = (now - state.ban_until).total_seconds() / limits.ramp
    return min(1.0, RAMP_START + (1 - RAMP_START) * done)


def next_send(state: PaceState, now: datetime, limits: Limits) -> Wait | None:
    """When the next send may start, and why it must wait; None: now."""
    factor = ramp_factor(state, now, limits)
    waits: list[Wait] = []
    if state.sends:
        gap = (limits.min_gap + state.jitter) / factor
        waits.append(Wait(state.sends[-1] + timedelta(seconds=gap), _why("gap", factor)))
    for cap, window, name in ((limits.per_hour, HOUR, "hourly"), (limits.per_day, DAY, "daily")):
        if cap > 0:
            allowed = max(1, int(cap * factor))
            recent = [t for t in state.sends if t > now - window]
            if len(recent) >= allowed:
                waits.append(Wait(recent[-allowed] + window, _why(f"{name} cap", factor)))
    return _latest(waits, now)


def next_lookup(state: PaceState, now: datetime, limits: Limits) -> Wait | None:
    waits: list[Wait] = []
    if state.lookup_retry_at is not None:
        waits.append(Wait(state.lookup_retry_at, "lookup back-off after a failure"))
    if state.lookups and limits.lookup_gap > 0:
        waits.append(Wait(state.lookups[-1] + timedelta(seconds=limits.lookup_gap), "lookup gap"))
    if limits.lookup_per_hour > 0:
        recent = [t for t in state.lookups if t > now - HOUR]
        if len(recent) >= limits.lookup_per_hour:
            waits.append(Wait(recent[-limits.lookup_per_hour] + HOUR, "lookup hourly cap"))
    return _latest(waits, now)


def same_text_wait(
    state: PaceState, text: str, recipient: str, now: datetime, limits: Limits
) -> Wait | None:
    """Wait while this text went to `same_text_max` other recipients within the window."""
    if limits.same_text_max <= 0:
        return None
    window = timedelta(seconds=limits.same_text_window)
    sent = state.texts.get(fingerprint(text), {})
    others = sorted(at for to, at in sent.items() if to != tag(recipient) and at > now - window)
    if len(others) < limits.same_text_max:
        return None
    frees = others[len(others) - limits.same_text_max] + window
    why = f"the same text went to {len(others)} recipients within {limits.same_text_window:g}s"
    return Wait(frees, why) if frees > now else None


def after_send(
    state: PaceState, at: datetime, text: str, recipient: str, jitter: float, limits: Limits
) -> PaceState:
    """The history after a send ended at `at` (whatever its result: WhatsApp may have seen it)."""
    keep = max(limits.per_day, limits.per_hour, 1)
    sends = sorted([*state.sends, at])[-keep:]
    texts = _recent_texts(state, at, limits)
    if limits.same_text_max > 0:
        key = fingerprint(text)
        texts[key] = {**texts.get(key, {}), tag(recipient): at}
    return state.model_copy(update={"sends": sends, "jitter": jitter, "texts": texts})


def after_lookup(state: PaceState, at: datetime, ok: bool, limits: Limits) -> PaceState:
    lookups = sorted([*state.lookups, at])[-max(limits.lookup_per_hour, 1) :]
    if ok:
        return state.model_copy(
            update={"lookups": lookups, "lookup_failures": 0, "lookup_retry_at": None}
        )
    failures = state.lookup_failures + 1
    backoff = min(MAX_LOOKUP_BACKOFF.total_seconds(), limits.lookup_backoff * 2 ** (failures - 1))
    retry_at = at + timedelta(seconds=backoff)
    return state.model_copy(
        update={"lookups": lookups, "lookup_failures": failures, "lookup_retry_at": retry_at}
    )


def after_ban(state: PaceState, until: datetime) -> PaceState:
    return state.model_copy(update={"ban_until": until})


def fingerprint(text: str) -> str:
    """Texts that differ only in case or spacing count as the same text."""
    normal = re.sub(r"\s+", " ", text.casefold()).strip()
    return hashlib.sha256(normal.encode()).hexdigest()[:16]


def tag(recipient: str) -> str:
    """A recipient as stored in the pace state: hashed, no phone number in NATS."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:12]


def _recent_texts(
    state: PaceState, now: datetime, limits: Limits
) -> dict[str, dict[str, datetime]]:
    since = now - timedelta(seconds=limits.same_text_window)
    kept = {
        key: {to: at for to, at in sent.items() if at > since} for key, sent in state.texts.items()
    }
    return {key: sent for key, sent in kept.items() if sent}


def _why(reason: str, factor: float) -> str:
    return reason if factor >= 1 else f"{reason} (slowed to {factor:.0%} after a temporary ban)"


def _latest(waits: list[Wait], now: datetime) -> Wait | None:
    latest = max(waits, key=lambda wait: wait.until, default=None)
    return latest if latest is not None and latest.until > now else None
