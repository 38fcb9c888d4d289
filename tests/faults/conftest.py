"""Fault suite: every test here is marked `faults`; scenario figures are printed at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import Stack
from tests.faults.summary import Summary

HERE = Path(__file__).parent
_SUMMARIES = pytest.StashKey[list[Summary]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SUMMARIES] = []


@pytest.fixture
def report(request: pytest.FixtureRequest) -> list[Summary]:
    """Scenarios append their `Summary`; the terminal summary prints them all."""
    return request.config.stash[_SUMMARIES]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summaries = terminalreporter.config.stash.get(_SUMMARIES, [])
    if not summaries:
        return
    terminalreporter.section("wasched fault scenarios")
    for summary in summaries:
        terminalreporter.line(summary.line())
    cache = getattr(terminalreporter.config, "cache", None)
    if cache is not None:
        cache.set("wasched/faults", [json.loads(s.to_json()) for s in summaries])


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    """Register every `Stack` here: whatever a failed scenario left running is killed."""
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.kill_all()
