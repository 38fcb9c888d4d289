"""No poll acts on a snapshot older than a fire check's, and no old leader acts after a
takeover (issue 11, items 6 and 7). A proxy in front of S3 holds back the answer to one
GET, so that the reader holds an old copy of the schedule while the world moves on."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.integration.test_poller_kit import (
    Poller,
    Watch,
    WebUi,
    at_offset,
    dues,
    message,
    poller_process,
    running_poller,
    start_poller,
    stored_due,
    stream_messages,
    utcnow,
)
from tests.support.s3proxy import Hold, S3Proxy
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.poller.fence import Deposed, Fence

DOC = "scheduled.json"


async def fetched(hold: Hold, timeout: float = 15.0) -> None:
    await eventually(hold.fetched.is_set, timeout, what="the held GET reached S3")


async def test_a_slow_poll_does_not_undo_a_fire_that_saw_a_newer_schedule(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    when = at_offset(12)
    web.put([message("moved", when)])
    due = await Watch.start(nc, topology.DUE)
    with S3Proxy(seaweed.endpoint) as proxy:
        async with running_poller(
            seaweed, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=1, S3_ENDPOINT=proxy.endpoint
        ) as poller:
            await poller.wait_log("scheduled 1 for later")
            await eventually(lambda: (when - utcnow()).total_seconds() < 3, 15)
            hold = proxy.hold_next_get(DOC)  # a poll reads the schedule; its answer is late
            await fetched(hold)
            assert (when - utcnow()).total_seconds() > 0.3, "too slow to set the race up"
            moved_to = when + timedelta(seconds=10)
            web.edit(lambda ms: ms[0].update(scheduledTime=moved_to.isoformat()))
            await eventually(lambda: utcnow() > when + timedelta(seconds=1.5), 10)
            hold.release()  # the poll now sees the copy from before the edit; the fire fired
            await eventually(lambda: "moved" in due.ids(), 30, what="'moved' handed over")
    handed = dues(due, "moved")
    assert [d.scheduled_time for d, _ in handed] == [moved_to], "handed over at its old time"
    (_, arrived), *_ = [(d, at) for d, at in await stored_due(js) if d.id == "moved"]
    assert (arrived - moved_to).total_seconds() >= -0.05


async def test_an_old_leader_resumed_after_a_takeover_sends_nothing_stale_and_steps_down(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    web.put([message("later", at_offset(86400))])
    due = await Watch.start(nc, topology.DUE)
    with S3Proxy(seaweed.endpoint) as proxy:
        old = await start_poller(
            seaweed,
            prefix,
            nats_url,
            tmp_path,
            "old",
            POLL_INTERVAL_SECONDS=1,
            S3_ENDPOINT=proxy.endpoint,
        )
        new = Poller(
            poller_process(seaweed, prefix, nats_url, tmp_path, "new", POLL_INTERVAL_SECONDS=1)
        )
        new.proc.start()
        try:
            await new.wait_log("standby:")
            stale = [message("deleted", at_offset(-1)), message("edited", at_offset(-1))]
            for _ in range(5):  # until the held read is one that holds both messages
                hold = proxy.hold_next_get(DOC)
                web.put([message("later", at_offset(86400)), *stale])
                await fetched(hold)
                if b'"deleted"' in hold.body:
                    break
                hold.release()
            old.proc.signal(signal.SIGSTOP)  # paused with the old copy on its way
            paused = utcnow()

            def edit(messages: list[dict]) -> None:
                messages[:] = [m for m in messages if m["id"] != "deleted"]
                for m in messages:
                    if m["id"] == "edited":
                        m["message"] = "the new text"

            web.edit(edit)
            await new.wait_log("took over from", timeout=30)
            await eventually(lambda: "edited" in due.ids(), 15, what="the new leader's hand-over")
            hold.release()
            old.proc.signal(signal.SIGCONT)
            resumed = utcnow()
            assert old.proc.process is not None
            code = await asyncio.to_thread(old.proc.process.wait, 30)
            await new.wait_log("loaded 2 messages", times=3)
        finally:
            old.proc.signal(signal.SIGCONT)
            old.kill()
            new.stop()
    print(f"old leader paused {(resumed - paused).total_seconds():.1f}s, exited {code}")
    assert dues(due, "deleted") == [], "the old leader handed over a deleted message"
    assert [d.message for d, _ in dues(due, "edited")] == ["the new text"]
    assert code == 3, old.log()[-3000:]


class FreshLease:
    """A lease this process believes it holds (as a partitioned leader would)."""

    def __init__(self, holder: str) -> None:
        self.holder = holder

    def fresh(self) -> bool:
        return True


async def test_a_publish_from_an_earlier_term_is_refused_by_the_server(
    js: JetStreamContext,
) -> None:
    """However late it arrives (nats-py resends what it buffered while disconnected)."""
    await topology.declare(js)
    old = Fence(js, FreshLease("old"))  # type: ignore[arg-type]
    new = Fence(js, FreshLease("new"))  # type: ignore[arg-type]
    await old.begin()
    stale_headers = old.headers()  # what the old leader attached before it was cut off
    await new.begin()
    with pytest.raises(Deposed):
        await old.publish(js.publish(topology.DUE, b"stale", headers=stale_headers))
    with pytest.raises(Deposed):
        await old.confirm()
    await new.publish(js.publish(topology.DUE, b"current", headers=new.headers()))
    await new.confirm()
    assert [m.data for m in await stream_messages(js, topology.DUE)] == [b"current"]
