"""A 100k-message schedule does not starve the poller's event loop (issue 11, item 12)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from tests.integration.test_poller_kit import WebUi, running_poller, utcnow
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.common.clock import format_utc
from wasched.poller.lease import lease_ttl

MESSAGES = 100_000
POLL = 5.0


def big_document(edition: int) -> bytes:
    """Every message different (recipient and time), so no cache saves the poller any work."""
    start = utcnow() + timedelta(days=30)
    messages = [
        {
            "id": f"m{i}",
            "to": f"4479{i:08d}",
            "message": f"message {i} of edition {edition}",
            "scheduledTime": format_utc(start + timedelta(seconds=i, milliseconds=edition)),
            "status": "pending",
            "createdAt": "2025-12-22T22:15:00.000Z",
        }
        for i in range(MESSAGES)
    ]
    return json.dumps({"messages": messages}, indent=2).encode()


@pytest.mark.timeout(300)
async def test_lease_renewals_keep_their_pace_while_a_100k_schedule_is_polled(
    moto: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    web.put_bytes(big_document(0))
    _, lease_kv = await topology.declare(js)
    renewals: list[float] = []

    async def watch() -> None:
        watcher = await lease_kv.watch(topology.POLLER_LEASE_KEY)
        while True:
            entry = await watcher.updates(timeout=60)
            if entry is not None and entry.value:
                renewals.append(time.monotonic())

    watching = asyncio.create_task(watch())
    try:
        async with running_poller(
            moto, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=POLL
        ) as poller:
            await poller.wait_log(f"loaded {MESSAGES} messages", timeout=120)
            for edition in (1, 2, 3):  # every poll finds a changed document to read and plan
                body = await asyncio.to_thread(big_document, edition)
                await asyncio.to_thread(web.put_bytes, body)
                await poller.wait_log(
                    f"loaded {MESSAGES} messages (changed)", times=edition, timeout=60
                )
            log = poller.log()
    finally:
        watching.cancel()
    ttl = lease_ttl(POLL)
    gaps = [b - a for a, b in itertools.pairwise(renewals)]
    print(f"{len(renewals)} renewals, longest gap {max(gaps):.2f}s (renewing every {ttl / 4:.2f}s)")
    assert max(gaps) <= ttl / 2, f"a renewal waited {max(gaps):.1f}s; the lease lasts {ttl:.1f}s"
    assert len(gaps) >= 4
    assert "not renewed lately" not in log
