"""A missing, empty or unreadable document is an unavailable schedule, never an empty one.

Nothing is cancelled or recorded while it is unavailable, fires wait for it, and removal of
a message is concluded only from a readable document at the message's time.
"""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.integration.test_poller_kit import (
    Watch,
    WebUi,
    at_offset,
    claim_as_sender,
    dues,
    message,
    running_poller,
    utcnow,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.events import Reply, ScheduleRequest
from wasched.common.ledger import LedgerState
from wasched.common.requests import request


async def test_a_missing_or_empty_document_cancels_nothing_and_fires_wait_for_it(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    soon = at_offset(12)
    web.put([message("handed", at_offset(-5)), message("soon", soon)])
    original, _ = web.get_bytes()
    due = await Watch.start(nc, topology.DUE)
    beats = await Watch.start(nc, topology.heartbeat_subject("poller"))
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await eventually(lambda: due.ids() == ["handed"], 20, what="handed over (no sender runs)")
        await poller.wait_log("scheduled 1 for later")
        web.delete()
        await poller.wait_log("does not exist", times=2)
        problem = await eventually(
            lambda: [b for b in beats.heartbeats() if b.details.get("documentProblem")], 10
        )
        assert "does not exist" in problem[-1].details["documentProblem"]
        assert problem[-1].details["documentProblemSince"] is not None
        web.put_bytes(b"")
        await poller.wait_log("is empty", times=2)
        await eventually(lambda: utcnow() > soon, 20, what="the time of 'soon'")
        await poller.wait_log("cannot check 1 fired message")
        assert "soon" not in due.ids()  # not sent unchecked
        web.put_bytes(original)  # the document is back
        await eventually(lambda: "soon" in due.ids(), 20, what="'soon' forwarded once readable")
        healthy = await eventually(
            lambda: [b for b in beats.heartbeats()[-1:] if not b.details.get("documentProblem")],
            10,
        )
        assert healthy
    ledger_kv = await js.key_value(topology.LEDGER_BUCKET)
    for ident in ("handed", "soon"):
        found = await ledger.read(ledger_kv, ident)
        assert found is None or found[0].state is not LedgerState.CANCELLED, (ident, found)
    assert {m["id"]: m["status"] for m in web.messages()} == {
        "handed": "pending",
        "soon": "pending",
    }
    handed = dues(due, "handed")[-1][0]
    assert (await claim_as_sender(js, handed)).won  # still sendable


async def test_a_message_a_stale_writer_dropped_and_restored_before_its_time_is_sent(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    soon = at_offset(14)
    full = [message("handed", at_offset(-5)), message("soon", soon), message("other", soon)]
    web.put(full)
    due = await Watch.start(nc, topology.DUE)
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await eventually(lambda: due.ids() == ["handed"], 20, what="handed over (no sender runs)")
        await poller.wait_log("scheduled 2 for later")
        web.put([full[2]])  # a stale copy without them: readable, they are gone
        await poller.wait_log("loaded 1 messages", times=2)
        web.put(full)  # a later write restores them
        await eventually(lambda: "soon" in due.ids(), 30, what="'soon' sent at its time")
    assert sorted(due.ids()).count("soon") == 1
    handed = dues(due, "handed")[-1][0]
    claim = await claim_as_sender(js, handed)
    assert claim.won, claim.entry  # the dropped-and-restored hand-over may be sent
    assert web.by_id()["soon"]["status"] == "pending"


async def test_a_first_schedule_request_creates_the_missing_document(
    moto: S3Server, prefix: str, nats_url: str, nc: NATS, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    due = await Watch.start(nc, topology.DUE)
    wanted = ScheduleRequest(
        id="first", to="447957189696", message="hi", scheduled_time=at_offset(-1)
    )
    async with running_poller(moto, prefix, nats_url, tmp_path) as poller:
        await poller.wait_log("does not exist")
        assert await request(nc, topology.SCHEDULE, wanted, "schedule:first") == Reply(
            ok=True, id="first"
        )
        await eventually(lambda: due.ids() == ["first"], 20, what="the first message sent")
    assert [m["id"] for m in web.messages()] == ["first"]
