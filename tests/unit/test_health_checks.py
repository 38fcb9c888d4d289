"""The /health verdict as a table: (last poller heartbeat, last sender status, now, settings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wasched.common.events import Heartbeat, SenderStatus
from wasched.common.settings import Settings, load_settings
from wasched.health.checks import (
    DOCUMENT,
    OVERDUE,
    POLLER,
    SENDER,
    STORE,
    evaluate,
    healthy,
    stale_after,
)
from wasched.health.state import Seen

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
GOOD = {
    "pending": 3,
    "overdue": 0,
    "oldestOverdueSeconds": None,
    "storeReachable": True,
    "storeMode": "conditional",
}


def settings(**extra: object) -> Settings:
    base: dict[str, object] = {"poll_interval_seconds": 60, "overdue_alert_seconds": 300}
    return load_settings(_env_file=None, **{**base, **extra})


def poller(age: float, **details: Any) -> Seen[Heartbeat]:
    return Seen(
        Heartbeat(service="poller", details={**GOOD, **details}), NOW - timedelta(seconds=age)
    )


def sender(age: float, state: str = "connected", **extra: Any) -> Seen[SenderStatus]:
    return Seen(SenderStatus(state=state, **extra), NOW - timedelta(seconds=age))  # type: ignore[arg-type]


CASES = [
    # id, poller, sender, failing checks, words in the failing detail
    ("all fresh and fine", poller(2), sender(1), set(), ""),
    ("poller never heard", None, sender(1), {POLLER, OVERDUE, STORE, DOCUMENT}, "no heartbeat"),
    ("poller just inside 3 intervals", poller(179), sender(1), set(), ""),
    ("poller silent past 3 intervals", poller(181), sender(1), {POLLER}, "181s ago"),
    ("sender never heard", poller(1), None, {SENDER}, "no status"),
    ("sender silent 16 s", poller(1), sender(16), {SENDER}, "16s ago"),
    ("sender needs linking", poller(1), sender(1, "pairing"), {SENDER}, "scan the QR"),
    ("sender logged out", poller(1), sender(1, "logged_out"), {SENDER}, "logged out"),
    (
        "sender disconnected",
        poller(1),
        sender(1, "disconnected", detail="network"),
        {SENDER},
        "network",
    ),
    (
        "overdue within threshold",
        poller(1, overdue=2, oldestOverdueSeconds=299),
        sender(1),
        set(),
        "",
    ),
    (
        "overdue past threshold (two silent hours)",
        poller(1, overdue=4, oldestOverdueSeconds=7200),
        sender(1),
        {OVERDUE},
        "4 overdue, oldest by 7200s (limit 300s)",
    ),
    ("overdue not reported", poller(1, overdue=None), sender(1), {OVERDUE}, "unknown"),
    ("overdue count without age", poller(1, overdue=2), sender(1), {OVERDUE}, "not reported"),
    (
        "store unreachable",
        poller(1, storeReachable=False, lastError="EndpointConnectionError"),
        sender(1),
        {STORE},
        "EndpointConnectionError",
    ),
    ("store not reported", poller(1, storeReachable=None), sender(1), {STORE}, "unreachable"),
    (
        "schedule unavailable for a moment",
        poller(
            1,
            documentProblem="s3://b/k does not exist",
            documentProblemSince="2025-12-24T09:58:00.000Z",
        ),
        sender(1),
        set(),
        "",
    ),
    (
        "schedule unavailable too long",
        poller(
            1,
            documentProblem="s3://b/k does not exist",
            documentProblemSince="2025-12-24T09:56:00.000Z",
        ),
        sender(1),
        {DOCUMENT},
        "unavailable for 240s (limit 180s): s3://b/k does not exist",
    ),
]


@pytest.mark.parametrize(
    ("poller_seen", "sender_seen", "failing", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_checks(
    poller_seen: Seen[Heartbeat] | None,
    sender_seen: Seen[SenderStatus] | None,
    failing: set[str],
    words: str,
) -> None:
    results = evaluate(poller_seen, sender_seen, NOW, settings())
    assert [r.name for r in results] == [POLLER, SENDER, OVERDUE, STORE, DOCUMENT]
    assert {r.name for r in results if not r.ok} == failing
    assert healthy(results) is (not failing)
    if words:
        assert any(words in r.detail for r in results if not r.ok), results


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"poll_interval_seconds": 60}, 180),
        ({"poll_interval_seconds": 10}, 30),
        ({"poll_interval_seconds": 1}, 15),  # heartbeats come at least every 5 s
        ({"poll_interval_seconds": 60, "health_stale_seconds": 4}, 4),
    ],
)
def test_staleness_bound(extra: dict[str, object], expected: float) -> None:
    assert stale_after(settings(**extra)) == expected


def test_overdue_threshold_is_configurable() -> None:
    seen = poller(1, overdue=1, oldestOverdueSeconds=90)
    assert healthy(evaluate(seen, sender(1), NOW, settings(overdue_alert_seconds=120)))
    assert not healthy(evaluate(seen, sender(1), NOW, settings(overdue_alert_seconds=60)))
