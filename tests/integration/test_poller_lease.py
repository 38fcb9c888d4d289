"""Two pollers: one is active, the other waits; killing the active one hands over."""

from __future__ import annotations

import time
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.integration.test_poller_kit import (
    Poller,
    Watch,
    WebUi,
    at_offset,
    message,
    poller_process,
    start_poller,
    stored_due,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.poller.lease import Lease, lease_ttl


async def test_only_one_poller_dispatches_and_killing_it_hands_over(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    before = message("before", at_offset(-5))
    web.put([before])
    due = await Watch.start(nc, topology.DUE)
    beats = await Watch.start(nc, topology.heartbeat_subject("poller"))
    first = await start_poller(seaweed, prefix, nats_url, tmp_path, "first")
    second = Poller(poller_process(seaweed, prefix, nats_url, tmp_path, "second").start())
    try:
        await second.wait_log("standby:")
        await eventually(lambda: due.ids() == ["before"], 10, what="dispatch by the active one")
        await first.wait_log("loaded 1 messages", times=3)
        assert "loaded" not in second.log()
        await eventually(  # the standby reports too
            lambda: any(not b.details["active"] for b in beats.heartbeats()), 10
        )
        first.kill()
        killed = time.monotonic()
        web.put([before, message("after", at_offset(-1))])
        await second.wait_log("took over from", timeout=30)
        took_over = time.monotonic() - killed
        await eventually(lambda: sorted(due.ids()) == ["after", "before"], 10)
        await second.wait_log("loaded 2 messages", times=2)
        assert second.stop() == 0
    finally:
        first.kill()
        second.kill()
    assert sorted(due.ids()) == ["after", "before"]  # each exactly once
    assert sorted(d.id for d, _ in await stored_due(js)) == ["after", "before"]
    ttl = lease_ttl(0.5)
    assert took_over <= ttl + 5, f"took over after {took_over:.1f}s (ttl {ttl}s)"
    print(f"standby took over {took_over:.1f}s after the active poller was killed (ttl {ttl}s)")


async def test_lease_is_compare_and_set_and_released_on_a_clean_stop(js: JetStreamContext) -> None:
    _, kv = await topology.declare(js)
    clock = [0.0]
    active = Lease(kv, "active", ttl=3.0, clock=lambda: clock[0])
    standby = Lease(kv, "standby", ttl=3.0, clock=lambda: clock[0])
    assert await active.try_acquire()
    assert not await standby.try_acquire()
    clock[0] = 2.9
    assert not await standby.try_acquire()
    assert (await active.renew()).value == "renewed"
    clock[0] = 5.0  # 2.1 s since the renewal moved the revision: still alive
    assert not await standby.try_acquire()
    clock[0] = 8.0  # the holder stopped renewing a whole ttl ago
    assert await standby.try_acquire()
    assert (await active.renew()).value == "lost"  # compare-and-set: the old holder learns it
    await standby.release()
    assert await active.try_acquire()  # released: free at once
