"""The sender's status reporter stops when it is told to, whenever that comes.

Python 3.11's `asyncio.wait_for` can swallow a cancellation that lands as the awaited
thing finishes (CPython gh-86296): a loop built on it may never stop, and the sender's
shutdown (or a test's teardown: seen as a 120 s hang in CI-style runs) waits forever.
"""

from __future__ import annotations

import asyncio
import random

from wasched.sender.connection import Connection
from wasched.sender.status import Stats, StatusReporter

ROUNDS = 400
"""Each round cancels the reporter at a random moment of its loop; on 3.11's `wait_for`,
about 3 in 100 rounds lost the cancellation."""


class QuietNats:
    """Publishes go nowhere, after a turn of the loop (as a real publish may take)."""

    async def publish(self, subject: str, data: bytes) -> None:
        await asyncio.sleep(0)


async def test_the_status_reporter_stops_whenever_it_is_cancelled() -> None:
    rng = random.Random(20261201)
    for round_ in range(ROUNDS):
        reporter = StatusReporter(QuietNats(), "dryrun", Stats(), interval=0.0005)  # type: ignore[arg-type]
        task = asyncio.create_task(reporter.run())
        for _ in range(rng.randint(0, 5)):
            reporter.changed(Connection())
            await asyncio.sleep(rng.random() * 0.002)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:  # stop it for good before failing
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
        assert done, f"round {round_}: the reporter went on after it was cancelled"
