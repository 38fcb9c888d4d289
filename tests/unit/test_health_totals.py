"""Cumulative heartbeat totals become counters that never go down, across restarts."""

from __future__ import annotations

import itertools

import pytest

from wasched.health.totals import MAX_KEYS, CumulativeTotals, clean_counts

Report = tuple[str, dict[str, float]]


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        pytest.param(
            [("poller", {"timeout": 1}), ("poller", {"timeout": 3})], {"timeout": 3}, id="grows"
        ),
        pytest.param(
            [("poller", {"timeout": 5}), ("poller", {"timeout": 0}), ("poller", {"timeout": 2})],
            {"timeout": 7},
            id="restart-from-zero-carries-over",
        ),
        pytest.param(
            [("poller", {"timeout": 5, "auth": 1}), ("poller", {"timeout": 6})],
            {"timeout": 11, "auth": 1},
            id="vanished-key-means-restart",
        ),
        pytest.param(
            [
                ("poller", {"a": 2}),
                ("poller", {"a": 1}),
                ("poller", {"a": 0}),
                ("poller", {"a": 4}),
            ],
            {"a": 7},
            id="two-restarts",
        ),
        pytest.param(
            [("poller", {"wasched.send": 2}), ("sender", {"wasched.send": 3})],
            {"wasched.send": 5},
            id="summed-over-services",
        ),
        pytest.param(
            [("poller", {"a": 2}), ("poller", {"a": 2}), ("poller", {"a": 2})],
            {"a": 2},
            id="repeats-count-once",
        ),
        pytest.param(
            [("poller/run-1", {"a": 4}), ("poller/run-2", {"a": 1}), ("poller/run-1", {"a": 4})],
            {"a": 5},
            id="runs-told-apart-by-instance",
        ),
    ],
)
def test_totals(reports: list[Report], expected: dict[str, float]) -> None:
    totals = CumulativeTotals()
    seen: list[dict[str, float]] = []
    for source, counts in reports:
        totals.update(source, counts)
        seen.append(totals.totals())
    assert seen[-1] == expected
    for before, after in itertools.pairwise(seen):
        assert all(after.get(k, 0) >= v for k, v in before.items()), "a counter went down"


def test_restart_told_by_caller_carries_equal_values() -> None:
    totals = CumulativeTotals()
    totals.update("sender", {"wasched.send": 2})
    totals.update("sender", {"wasched.send": 2}, restarted=True)
    assert totals.totals() == {"wasched.send": 4}


@pytest.mark.parametrize(
    ("raw", "known", "expected"),
    [
        ({"timeout": 3, "http_503": 0}, None, {"timeout": 3.0, "http_503": 0.0}),
        (
            {"bad label": 1, "447957189696": 2, "id-1234567": 4, "ok": 1},
            None,
            {"other": 7.0, "ok": 1.0},
        ),
        ({"neg": -1, "bool": True, "text": "3", "ok": 2.5}, None, {"ok": 2.5}),
        (
            {"wasched.send": 2, "order-4711": 1, "wasched.x": 1},
            {"wasched.send"},
            {"wasched.send": 2.0, "other": 2.0},
        ),
        ([1, 2], None, {}),
        (None, None, {}),
    ],
)
def test_clean_counts(raw: object, known: set[str] | None, expected: dict[str, float]) -> None:
    assert clean_counts(raw, known) == expected


def test_clean_counts_bounds_label_cardinality_without_losing_counts() -> None:
    counts = clean_counts({f"k{i}": 1 for i in range(500)})
    assert len(counts) == MAX_KEYS + 1  # the rest as `other`
    assert sum(counts.values()) == 500
