"""The benchmark harness's pure parts: aggregation, the burst simulation, the report.

A wrong median or a renderer that drops the baseline would publish wrong figures
in bench/RESULTS.md; these run in milliseconds, without any server.
"""

from __future__ import annotations

import itertools
import math

import pytest
from bench import burst
from bench.report import BLOCK_END, BLOCK_START, burst_block, duration, fmt, render, replace_block
from bench.stats import Spread, aggregate, percentile, summary


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([3.0, 1.0, 2.0], Spread(2.0, 1.0, 3.0, 3), id="odd count"),
        pytest.param([4.0, 1.0, 2.0, 3.0], Spread(2.5, 1.0, 4.0, 4), id="even count"),
        pytest.param([5.0], Spread(5.0, 5.0, 5.0, 1), id="one run"),
        pytest.param(
            [None, 2.0, math.nan, 4.0], Spread(3.0, 2.0, 4.0, 2), id="unmeasured left out"
        ),
    ],
)
def test_spread_is_median_min_max_of_the_measured_runs(values, expected):
    assert Spread.of(values) == expected


def test_a_figure_no_run_measured_is_missing_not_zero():
    spread = Spread.of([None, None])
    assert spread.missing
    assert fmt(spread) == "—"


def test_aggregate_keeps_every_key_even_one_a_run_lacks():
    got = aggregate([{"a": 1.0, "b": 10.0}, {"a": 3.0}, {"a": 2.0, "b": 30.0}])
    assert got == {"a": Spread(2.0, 1.0, 3.0, 3), "b": Spread(20.0, 10.0, 30.0, 2)}


@pytest.mark.parametrize(("q", "expected"), [(0, 1.0), (50, 2.5), (90, 3.7), (100, 4.0)])
def test_percentile_interpolates_between_ranks(q, expected):
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_summary_of_one_run():
    got = summary([0.5, 1.5, 2.5, 10.0])
    assert got["p50"] == pytest.approx(2.0)
    assert got["max"] == 10.0


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        (Spread(1.5, 1.0, 2.0, 3), ".2f", "1.50 (1.00–2.00)"),
        (Spread(1.5, 1.5, 1.5, 3), ".2f", "1.50"),
        (Spread(1.5, 1.0, 2.0, 1), ".1f", "1.5"),
        (None, ".1f", "—"),
    ],
)
def test_fmt_shows_min_and_max_only_when_runs_differ(value, spec, expected):
    assert fmt(value, spec) == expected


@pytest.mark.parametrize(
    ("seconds", "text"), [(41, "41 s"), (492, "8 min 12 s"), (7440, "2 h 04 min")]
)
def test_duration(seconds, text):
    assert duration(seconds) == text


DEFAULT = burst.Pace(min_gap=3, jitter=2, max_per_hour=120)


def test_burst_without_jitter_follows_the_gap_then_the_hourly_cap():
    late = burst.wasched(300, burst.Pace(min_gap=3, jitter=0, max_per_hour=120), seed=1)
    assert late[:3] == [0, 3, 6]
    assert late[119] == 3 * 119
    assert late[120] == 3600  # the 121st waits until the first send is an hour old
    assert late[240] == 7200
    assert late[-1] == 7200 + 3 * 59


def test_burst_jitter_stays_within_its_bounds_and_is_reproducible():
    late = burst.wasched(50, DEFAULT, seed=7)
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert all(3 <= g <= 5 for g in gaps)
    assert late == burst.wasched(50, DEFAULT, seed=7)
    assert late != burst.wasched(50, DEFAULT, seed=8)


def test_burst_at_a_daily_cap_waits_for_the_day_to_roll_on():
    pace = burst.Pace(min_gap=0, jitter=0, max_per_hour=0, max_per_day=100)
    late = burst.wasched(150, pace, seed=1)
    assert late[99] == 0 and late[100] == 86400


def test_burst_to_new_numbers_waits_for_the_lookups():
    pace = burst.Pace(min_gap=0, jitter=0, max_per_hour=0, lookup_gap=5)
    assert burst.wasched(3, pace, seed=1) == [0.0, 5.0, 10.0]


def test_burst_pickup_and_per_send_time_are_added():
    pace = burst.Pace(min_gap=3, jitter=0, max_per_hour=0, pickup=0.5, overhead=0.25)
    assert burst.wasched(3, pace, seed=0) == [0.5, 3.75, 7.0]


def test_calibration_reads_pickup_and_overhead_from_real_runs():
    real = [[0.1, 4.3, 8.5], [0.2, 4.4, 8.6], [0.3, 4.5, 8.7]]  # gaps of 4.2 = 3 + 1 + 0.2
    pace = burst.calibrate(real, DEFAULT)
    assert pace.pickup == pytest.approx(0.2)
    assert pace.overhead == pytest.approx(0.2)


def test_baseline_burst_waits_for_one_poll_then_goes_at_once():
    late = burst.baseline(300, interval=60, per_send=0.01, seed=3)
    assert 0 <= late[0] < 60
    assert late[-1] == pytest.approx(late[0] + 2.99)


def _results() -> dict:
    s = Spread(1.0, 0.5, 2.0, 3)
    side = {k: s for k in ("stored_per_s", "seconds", "stored", "finished", "sent_per_s",
                           "writes", "outcomes_per_write", "peak_rss_mb")}  # fmt: skip
    poll = {k: s for k in ("cpu_304_own", "idle_share", "cpu_changed", "wall_changed",
                           "peak_rss_mb", "requests_per_poll", "bytes_per_poll",
                           "cpu_changed_hook", "decided_304")}  # fmt: skip
    poll["cpu_304_hook"] = Spread(0.004, 0.003, 0.005, 3)
    base = {k: Spread(9.0, 8.0, 10.0, 3) for k in ("cpu_poll", "wall_poll", "peak_rss_mb",
                                                    "requests_per_poll", "bytes_per_poll")}  # fmt: skip
    row = {"label": "worst case 100k", "mb": 42.0, "wasched": poll, "baseline": base}
    ends = {k: s for k in ("first", "last", "p50")}
    lat = {k: Spread(7440.0, 7400.0, 7480.0, 3) for k in ("p50", "p90", "p99", "max")}
    return {
        "meta": {
            "commit": "abc123+dirty", "date": "2026-12-01 16:00", "minutes": 14.2,
            "machine": "x86_64", "load_start": "1.0", "load_end": "2.0", "runs": 3,
            "quick": False, "worst_size": 100_000, "singles": 3, "write_gap": 8.0,
            "mirror_entries": 100_000, "due": 10_000, "cap": 60.0, "late_count": 60,
            "late_spread": 30.0, "base_interval": 60.0, "lead": 8.0,
        },
        "polling": [row],
        "worst_poll": row,
        "writes": {k: s for k in ("wall", "cpu", "sent_to_stored", "writes", "peak_rss_mb")},
        "mirror": {"mirror_mb": Spread(130.0, 120.0, 140.0, 3)},
        "throughput": {"wasched": side, "baseline": side},
        "precision": {"wasched": lat, "baseline": lat},
        "burst": {
            "count": 300, "trials": 201, "interval": 60.0, "per_send": 0.004,
            "pace": {"min_gap": 3, "jitter": 2, "max_per_hour": 120, "max_per_day": 0,
                     "lookup_gap": 0, "lookup_per_hour": 0, "pickup": 0.05, "overhead": 0.01},
            "sim_wasched": lat, "sim_baseline": lat,
            "cumulative": [("10 min", 120), ("2 h 30", 300)],
            "real_count": 10, "real_runs": 3, "real": ends, "sim_small": ends, "real_base": ends,
        },
        "footprint": {f"{svc}_{k}": s for svc in ("poller", "sender", "health")
                      for k in ("ready_s", "rss_mb", "cpu_pct")},
    }  # fmt: skip


def test_results_page_states_what_was_measured_and_every_target_row():
    text = render(_results())
    assert "`abc123+dirty`" in text
    assert "2026-12-01 16:00" in text
    assert "median (min–max) of 3 runs" in text
    assert (
        "| ledger mirror at 100,000 entries, MB | 130 (120–140) | — | ~130 MB | ≤ 30 | **no** |"
        in text
    )
    assert "| 10,000 due at once, end to end, msg/s | 1 (0–2) | 1 (0–2) |" in text
    assert (  # the poller's own figure (heartbeat cycleCpuSeconds)
        "| poll when S3 answers 304: poller CPU s | 0.004 (0.003–0.005) | 9.000 (8.000–10.000) "
        "| 0.8 s | ≤ 0.020 | yes |" in text
    )
    assert "| | | baseline | 9.000 (8.000–10.000)" in text
    assert "simulated" in text and "real" in text
    assert "--quick" not in text


def test_quick_results_say_they_are_not_the_targets():
    results = _results()
    results["meta"] |= {"quick": True, "runs": 1}
    assert "not the targets" in render(results)


def test_burst_block_replaces_only_the_marked_part_of_the_doc():
    doc = f"# Running\n\nbefore\n\n{BLOCK_START}\nold figures\n{BLOCK_END}\n\nafter\n"
    block = burst_block(_results())
    new = replace_block(doc, block)
    assert new.startswith("# Running\n\nbefore\n\n")
    assert new.endswith("\n\nafter\n")
    assert "old figures" not in new
    assert "2 h 04 min" in new
    assert replace_block(new, block) == new  # idempotent


def test_a_doc_without_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        replace_block("# Running\n", burst_block(_results()))
