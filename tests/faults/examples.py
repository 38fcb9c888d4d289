"""Hypothesis examples for the process-level scenarios, drawn reproducibly from a seed.

The services run as real processes, so each example cannot be a separate test
run; instead a batch is drawn once (generation phase only) and fed to them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from wasched.common.messages import MessageInvalid, read_message

T = TypeVar("T")


def draw_examples(strategy: st.SearchStrategy[T], count: int, seed: int) -> list[T]:
    found: list[T] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def grab(value: T) -> None:
        found.append(value)

    grab()
    return found


def fate(raw: dict[str, Any], now: datetime) -> tuple[str, str | None] | None:
    """How a pending message must end, judged like the poller (None: depends on timing)."""
    try:
        message = read_message(raw)
    except MessageInvalid as exc:
        return "failed", exc.kind.value
    if message.expires_at is not None and message.expires_at < now:
        return "expired", "expired"
    if message.scheduled_time < now - timedelta(days=1):
        return "expired", "expired"
    if message.scheduled_time > now + timedelta(days=1):
        return "pending", None
    return None
