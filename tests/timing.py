"""How long `make test` takes from a fresh clone: the figure in the README comes from here.

`make test-time` (or `python3 -m tests.timing --runs 3 --readme README.md`) clones the
committed HEAD into a temporary directory for each run, times `make test` there (the
environment sync, ruff and the whole suite, as CI runs it) and, when every run passed,
writes the times, the machine's cores and its load average between the README's
`test-time` markers. The machine may be shared: the load average says how busy it was.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- test-time -->", "<!-- /test-time -->"


@dataclass(frozen=True)
class Run:
    seconds: float
    load_before: float
    code: int


def timed_run(root: Path, log: Path) -> Run:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wasched-test-time-") as tmp:
        clone = Path(tmp) / "p"
        subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
        began = time.monotonic()
        with log.open("ab") as out:
            code = subprocess.run(["make", "test"], cwd=clone, stdout=out, stderr=out).returncode
        return Run(time.monotonic() - began, load, code)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


def block(runs: list[Run], commit: str) -> str:
    times = ", ".join(minutes(r.seconds) for r in runs)
    loads = ", ".join(f"{r.load_before:.1f}" for r in runs)
    day = datetime.now(UTC).date().isoformat()
    return (
        f"{BEGIN}\n`make test` from a fresh clone took {times} "
        f"({len(runs)} runs; {os.cpu_count()} cores; 1-minute load average before each: "
        f"{loads}; {day}, commit {commit}; `make test-time` measures it again).\n{END}"
    )


def write_readme(readme: Path, text: str) -> None:
    old = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(old):
        raise SystemExit(f"{readme}: no {BEGIN} … {END} markers to write between")
    readme.write_text(pattern.sub(lambda _: text, old))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--readme", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "test-time.log")
    args = parser.parse_args(argv)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    runs = []
    for n in range(args.runs):
        run = timed_run(ROOT, args.log)
        runs.append(run)
        print(f"run {n + 1}: {minutes(run.seconds)} (exit {run.code}, load {run.load_before:.1f})")
    if any(r.code for r in runs):
        print(f"a run failed: see {args.log}; the README is left as it was", file=sys.stderr)
        return 1
    text = block(runs, commit)
    print(text)
    if args.readme:
        write_readme(args.readme, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
