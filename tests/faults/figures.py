"""Collects the fault scenarios' summaries, prints them at the end and writes their figures.

A pytest plugin loaded by tests/conftest.py (`pytest_plugins`), so it runs in the xdist
controller, which loads no conftest below tests/: a scenario's summary travels from its
worker in the test report's `user_properties`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faults.summary import Summary

SUMMARY_PROPERTY = "wasched_summary"
_collected: list[Summary] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wasched-figures",
        metavar="PATH",
        default=None,
        help="write the fault scenarios' asserted figures (JSON) here, for docs/reliability.md",
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == SUMMARY_PROPERTY:
            _collected.append(Summary.from_json(str(value)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    summaries = sorted(_collected, key=lambda s: s.scenario)
    if hasattr(config, "workerinput") or not summaries:
        return
    terminalreporter.section("wasched fault scenarios")
    for summary in summaries:
        terminalreporter.line(summary.line())
    data = [json.loads(s.to_json()) for s in summaries]
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache.set("wasched/faults", data)
    if path := config.getoption("--wasched-figures"):
        run = {
            "date": datetime.now(UTC).date().isoformat(),
            "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        }
        out = {"run": run, "scenarios": data}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        terminalreporter.line(f"figures written to {path}")
