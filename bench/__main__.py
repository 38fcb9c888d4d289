"""`make bench`: every figure of issue 16, each the median of several runs; writes
bench/RESULTS.md and the burst block of docs/running.md.

`--quick` (`make bench-quick`): small sizes, one run each, development venv —
a smoke run of the whole harness in under two minutes; it writes
bench/RESULTS-quick.md (not committed) and touches neither RESULTS.md nor the docs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import burst, documents
from bench.harness import ROOT, Stack, image_python, stack
from bench.report import burst_block, render, replace_block
from bench.scenarios import footprint, mirror, polling, throughput, timing, writes
from bench.stats import Spread, aggregate, summary
from wasched.sender.config import SenderSettings

RESULTS = ROOT / "bench" / "RESULTS.md"
QUICK_RESULTS = ROOT / "bench" / "RESULTS-quick.md"
RUNNING = ROOT / "docs" / "running.md"
SECTIONS = ("footprint", "polling", "writes", "mirror", "throughput", "timing")


@dataclass(frozen=True)
class Plan:
    runs: int
    idle: float
    docs: tuple[tuple[str, str, int], ...]
    """(label, kind, messages) for the polling table; the last one is the worst case."""
    polls: int
    singles: int
    write_gap: float
    mirror_entries: int
    due: int
    cap: float
    late_count: int
    late_spread: float
    lead: float
    write_lead: float
    base_interval: float
    burst_count: int
    real_count: int
    trials: int
    image: bool


FULL = Plan(
    runs=3, idle=10, polls=4, singles=3, write_gap=8, mirror_entries=100_000, due=10_000, cap=60,
    docs=(("realistic 1k", "realistic", 1_000), ("realistic 10k", "realistic", 10_000),
          ("worst case 100k", "worst", 100_000)),
    late_count=60, late_spread=30, lead=8, write_lead=30, base_interval=60, burst_count=300, real_count=10,
    trials=201, image=True,
)  # fmt: skip
QUICK = Plan(
    runs=1, idle=2, polls=2, singles=2, write_gap=5, mirror_entries=5_000, due=500, cap=30,
    docs=(("realistic 1k", "realistic", 1_000), ("worst case 5k", "worst", 5_000)),
    late_count=10, late_spread=5, lead=6, write_lead=12, base_interval=15, burst_count=300, real_count=4,
    trials=51, image=False,
)  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these")
    return parser.parse_args()


def pythons(plan: Plan) -> dict[str, str]:
    if not plan.image:
        return {s: sys.executable for s in ("poller", "sender", "health")}
    return {s: image_python(s) for s in ("poller", "sender", "health")}


async def repeat(plan: Plan, what: str, make: Any) -> dict[str, Spread]:
    runs = []
    for i in range(plan.runs):
        started = time.monotonic()
        runs.append(await make())
        print(f"  {what} run {i + 1}/{plan.runs}: {time.monotonic() - started:.0f} s", flush=True)
    return aggregate(runs)


async def measure(plan: Plan, wanted: set[str]) -> dict[str, Any]:
    py = await asyncio.to_thread(pythons, plan)
    results: dict[str, Any] = {}
    with stack() as st:
        if "footprint" in wanted:
            results["footprint"] = await repeat(
                plan, "footprint", lambda: footprint.idle_services(st, plan.idle, py)
            )
        if "polling" in wanted:
            results["polling"] = await _polling(st, plan, py)
            results["worst_poll"] = results["polling"][-1]
        if "writes" in wanted:
            size = plan.docs[-1][2]
            results["writes"] = await repeat(
                plan,
                "writes",
                lambda: writes.wasched_writes(
                    st, size, plan.singles, plan.write_lead, plan.write_gap, py
                ),
            )
        if "mirror" in wanted:
            results["mirror"] = await repeat(
                plan, "mirror", lambda: mirror.wasched_mirror(st, plan.mirror_entries, py["poller"])
            )
        if "throughput" in wanted:
            results["throughput"] = await _throughput(st, plan, py)
        if "timing" in wanted:
            results.update(await _timing(st, plan, py))
    return results


async def _polling(st: Stack, plan: Plan, py: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    far = datetime.now(UTC) + timedelta(days=2)
    for label, kind, size in plan.docs:
        build = documents.worst_case if kind == "worst" else documents.realistic
        body = documents.render(build(size, "p", far, timedelta(minutes=5)))
        print(f"polling: {label}", flush=True)
        ours = await repeat(plan, label, lambda b=body: polling.wasched_polls(st, b, plan.polls))
        base = await repeat(
            plan, f"{label} baseline", lambda b=body: polling.baseline_polls(st, b, 2)
        )
        rows.append({"label": label, "mb": len(body) / 1e6, "wasched": ours, "baseline": base})
    return rows


async def _throughput(st: Stack, plan: Plan, py: dict[str, str]) -> dict[str, Any]:
    size = plan.docs[-1][2]
    now = datetime.now(UTC)
    far = documents.worst_case(size - plan.due, "f", now + timedelta(days=2), timedelta(minutes=5))
    due = [
        documents.message(
            f"d{i}", now - timedelta(seconds=1), to=documents.distinct(size + i),
            text=documents.EMOJI_TEXT.format(name=f"Zoë {i}", n=i),
        )
        for i in range(plan.due)
    ]  # fmt: skip
    before, after = documents.render(far), documents.render(far + due)
    del far, due
    print("throughput", flush=True)
    ours = await repeat(
        plan, "wasched", lambda: throughput.wasched_burst(st, before, after, plan.due, plan.cap, py)
    )
    base = await repeat(plan, "baseline", lambda: throughput.baseline_burst(st, after, plan.due))
    return {"wasched": ours, "baseline": base}


async def _timing(st: Stack, plan: Plan, py: dict[str, str]) -> dict[str, Any]:
    """All runs at once (they mostly wait): precision, the real burst, the baseline's burst
    with its poll loop started at `runs` different phases."""
    print("timing (all runs at once)", flush=True)
    n = plan.runs
    step = plan.base_interval / n
    jobs = [
        *(timing.precision(st, plan.late_count, plan.late_spread, plan.lead, plan.base_interval, py)
          for _ in range(n)),
        *(timing.burst_wasched(st, plan.real_count, plan.lead, py) for _ in range(n)),
        *(timing.burst_baseline(st, plan.burst_count, 5 + step * k, plan.base_interval)
          for k in range(n)),
    ]  # fmt: skip
    started = time.monotonic()
    done = await asyncio.gather(*jobs)
    print(f"  timing: {time.monotonic() - started:.0f} s", flush=True)
    late, real, base = done[:n], done[n : 2 * n], done[2 * n :]
    precision = {
        who: aggregate([summary(run[who]) for run in late]) for who in ("wasched", "baseline")
    }
    return {"precision": precision, "burst": simulate(plan, real, base)}


def simulate(plan: Plan, real: list[list[float]], base: list[list[float]]) -> dict[str, Any]:
    defaults = SenderSettings.model_fields
    pace = burst.Pace(
        min_gap=defaults["send_min_gap_seconds"].default,
        jitter=defaults["send_jitter_seconds"].default,
        max_per_hour=defaults["send_max_per_hour"].default,
        max_per_day=defaults["send_max_per_day"].default,
        lookup_gap=defaults["lookup_min_gap_seconds"].default,
        lookup_per_hour=defaults["lookup_max_per_hour"].default,
    )
    pace = burst.calibrate(real, pace)
    per_send = Spread.of((run[-1] - run[0]) / (len(run) - 1) for run in base if len(run) > 1).median
    seeds = range(plan.trials)
    big = [burst.wasched(plan.burst_count, pace, s) for s in seeds]
    small = [burst.wasched(plan.real_count, pace, s) for s in seeds]
    old = [burst.baseline(plan.burst_count, plan.base_interval, per_send, s) for s in seeds]
    marks = [("10 min", 600), ("1 h", 3600), ("6 h", 6 * 3600), ("1 day", 86400),
             ("2 days", 2 * 86400), ("3 days", 3 * 86400), ("4 days", 4 * 86400)]  # fmt: skip
    cumulative = [
        (label, int(Spread.of(sum(x <= limit for x in run) for run in big).median))
        for label, limit in marks
    ]
    return {
        "count": plan.burst_count,
        "trials": plan.trials,
        "interval": plan.base_interval,
        "per_send": per_send,
        "pace": vars_of(pace),
        "sim_wasched": aggregate([summary(run) for run in big]),
        "sim_baseline": aggregate([summary(run) for run in old]),
        "cumulative": cumulative,
        "real_count": plan.real_count,
        "real_runs": len(real),
        "real": aggregate([_ends(run) for run in real]),
        "sim_small": aggregate([_ends(run) for run in small]),
        "real_base": aggregate([_ends(run) for run in base]),
    }


def vars_of(pace: burst.Pace) -> dict[str, Any]:
    return {f: getattr(pace, f) for f in pace.__slots__}


def _ends(run: list[float]) -> dict[str, float | None]:
    if not run:
        return {"first": None, "last": None, "p50": None}
    return {"first": run[0], "last": run[-1], "p50": summary(run)["p50"]}


def commit() -> str:
    head = (
        subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        or "unknown"
    )
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, cwd=ROOT).stdout.strip()  # fmt: skip
    return head + ("+dirty" if dirty else "")  # fmt: skip


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    plan = QUICK if args.quick else FULL
    wanted = set(args.only or SECTIONS)
    started, load_start, measured = time.monotonic(), load(), commit()
    date = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    results = asyncio.run(measure(plan, wanted))
    with contextlib.suppress(OSError):  # for re-rendering while working on the report
        (ROOT / "bench" / ".last-results.pickle").write_bytes(pickle.dumps(results))
    results["meta"] = {
        "commit": measured, "date": date, "minutes": (time.monotonic() - started) / 60,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_start": load_start, "load_end": load(), "runs": plan.runs, "quick": args.quick,
        "worst_size": plan.docs[-1][2], "singles": plan.singles, "write_gap": plan.write_gap,
        "mirror_entries": plan.mirror_entries, "due": plan.due, "cap": plan.cap,
        "late_count": plan.late_count, "late_spread": plan.late_spread,
        "base_interval": plan.base_interval, "lead": plan.lead,
    }  # fmt: skip
    text = render(results)
    print(text)
    target = QUICK_RESULTS if args.quick else RESULTS
    if args.only and not args.quick:
        target = ROOT / "bench" / "RESULTS-partial.md"  # a partial run never replaces the whole
    target.write_text(text)
    if target == RESULTS and "burst" in results:
        RUNNING.write_text(replace_block(RUNNING.read_text(), burst_block(results)))
    print(f"written to {target.relative_to(ROOT)} in {results['meta']['minutes']:.1f} min")


if __name__ == "__main__":
    main()
