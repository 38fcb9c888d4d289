"""`make bench`: run every benchmark once, print the table, write bench/RESULTS.md.

`--quick` shrinks every size (a smoke run: the numbers are not the targets').
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import stack
from bench.scenarios import bench_footprint, bench_lateness, bench_polling, bench_throughput

RESULTS = Path(__file__).with_name("RESULTS.md")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only", choices=["lateness", "throughput", "polling", "footprint"], action="append"
    )
    return parser.parse_args()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    wanted = set(args.only or ["lateness", "throughput", "polling", "footprint"])
    results: dict[str, Any] = {}
    with stack() as st:
        if "footprint" in wanted:
            results["footprint"] = await bench_footprint(st, idle=5 if quick else 20)
        if "polling" in wanted:
            sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
            results["polling"] = await bench_polling(st, sizes, idle_polls=2 if quick else 5)
        if "throughput" in wanted:
            results["throughput"] = await bench_throughput(st, 500 if quick else 10_000)
        if "lateness" in wanted:
            results["lateness"] = await bench_lateness(
                st, count=60 if quick else 300, spread=60 if quick else 240, lead=20
            )
    return results


def render(results: dict[str, Any], quick: bool) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}{' (--quick: small sizes, not the targets)' if quick else ''}. "
        "Real nats-server and SeaweedFS, `dryrun` transport, throttle off. "
        "The baseline is bench/baseline.py (GET all / send due / PUT all every 60 s).",
        "",
    ]
    if late := results.get("lateness"):
        lines += [
            f"## Lateness (`sentAt − scheduledTime`), {late['count']} messages over {late['spread']:.0f} s, poll interval 60 s",
            "",
            "| | p50 s | p95 s | p99 s | max s |",
            "|---|---|---|---|---|",
        ]
        for name in ("wasched", "baseline"):
            p = late[name]
            lines.append(
                f"| {name} | {p['p50']:.3f} | {p['p95']:.3f} | {p['p99']:.3f} | {p['max']:.3f} |"
            )
        lines += [
            "",
            f"p99 ratio baseline / wasched: **{late['ratio_p99']:.0f}×** (target p99 ≤ 1 s)",
            "",
        ]
    if tp := results.get("throughput"):
        lines += [
            f"## Throughput: {tp['count']} messages due at once, throttle off",
            "",
            f"All `sent` in the stored document after **{tp['seconds']:.1f} s** = "
            f"**{tp['per_second']:.0f} messages/s** (target ≥ 200/s); S3 requests: {tp['s3_requests']}.",
            "",
        ]
    if poll := results.get("polling"):
        lines += [
            "## Polling cost vs document size (nothing due)",
            "",
            "| messages | object | cycle changed s | cycle unchanged s | poller peak RSS MB | idle req/poll | idle bytes/poll | bytes/idle hour wasched | baseline |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in poll:
            lines.append(
                f"| {r['size']:,} | {r['doc_bytes'] / 1e6:.2f} MB | {r['changed_cycle']:.3f} | {r['unchanged_cycle']:.3f} | "
                f"{r['peak_rss_mb']:.0f} | {r['idle_requests_per_poll']:.1f} | {r['idle_bytes_per_poll']:.0f} | "
                f"{r['wasched_bytes_per_hour'] / 1e6:.3f} MB | {r['baseline_bytes_per_hour'] / 1e6:.1f} MB |"
            )
        lines += [
            "",
            "Targets: one poll of 100k messages ≤ 2 s and ≤ 200 MB peak; idle ≈ one conditional request per poll, no bodies.",
            "",
        ]
    if fp := results.get("footprint"):
        lines += [
            "## Footprint (idle, after start)",
            "",
            "| service | ready s | RSS MB | CPU % |",
            "|---|---|---|---|",
        ]
        for r in fp:
            lines.append(
                f"| {r['service']} | {r['ready_seconds']:.2f} | {r['rss_mb']:.0f} | {r['cpu_percent']:.1f} |"
            )
        lines += ["", "Targets: idle RSS poller ≤ 80 MB, health ≤ 60 MB, sender ≤ 150 MB.", ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    results = asyncio.run(run(args))
    text = render(results, args.quick)
    print(text)
    RESULTS.write_text(text + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
