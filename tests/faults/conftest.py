"""Fault suite: every test here is marked `faults`; scenario figures are printed at the end.

A scenario test asks for `open_scenario` and gets a ready `Scenario` (its own stack of
service processes, prefix, directory, heartbeats and seed); whatever it left running is
killed after the test. With pytest-xdist each scenario file runs on a worker of its own
(`--dist loadfile`), and the figures of every worker reach the summary here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Generator
from pathlib import Path
from typing import Protocol

import pytest
from nats.aio.client import Client as NATS

from tests.faults.figures import SUMMARY_PROPERTY
from tests.faults.scenario import SEED_ENV, Scenario, scenario_seed
from tests.faults.stack import Heartbeats, Stack
from tests.faults.summary import Summary
from wasched.cli.servers import S3Server

HERE = Path(__file__).parent
_SEED = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The one seed every random choice of a test comes from; shown when the test fails."""
    value = scenario_seed()
    request.node.stash[_SEED] = value
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SEED in item.stash:
        value = item.stash[_SEED]
        report.sections.append(("seed", f"seed {value}: replay with {SEED_ENV}={value}"))


class OpenScenario(Protocol):
    def __call__(
        self,
        name: str,
        *,
        env: dict[str, object] | None = None,
        crash_targets: tuple[str, ...] = (),
        s3: S3Server | None = None,
        nats_url: str | None = None,
        nc: NATS | None = None,
    ) -> Awaitable[Scenario]: ...


@pytest.fixture
async def open_scenario(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    prefix: str,
    seed: int,
    nats_url: str,
    nc: NATS,
) -> AsyncIterator[OpenScenario]:
    """Make the test's scenario: own stack (S3 prefix, directory), heartbeats, seed.

    S3 defaults to the session SeaweedFS and NATS to the test's own nats-server; a test
    that brings its own (an S3 it stops, a cluster) passes them.
    """
    default_url, default_nc = nats_url, nc
    made: list[Stack] = []

    def record(summary: Summary) -> None:
        request.node.user_properties.append((SUMMARY_PROPERTY, summary.to_json()))

    async def factory(
        name: str,
        *,
        env: dict[str, object] | None = None,
        crash_targets: tuple[str, ...] = (),
        s3: S3Server | None = None,
        nats_url: str | None = None,
        nc: NATS | None = None,
    ) -> Scenario:
        server = s3 or request.getfixturevalue("seaweed")
        url = nats_url or default_url
        client = nc or default_nc
        root = tmp_path / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        stack = Stack(root, server, prefix, url, dict(env or {}))
        made.append(stack)
        beats = Heartbeats()
        await beats.attach(client)
        return Scenario(name, stack, beats, client, record, seed, crash_targets=crash_targets)

    yield factory
    for stack in made:
        stack.kill_all()
