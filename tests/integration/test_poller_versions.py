"""What goes out is the document's version at the time of the send (issue 11, items 5 and 8).

The tests play the sender by the ledger contract: claim exactly the version a hand-over
carries, send only when the claim is won.
"""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.integration.test_poller_kit import (
    PHONE,
    Watch,
    WebUi,
    at_offset,
    claim_as_sender,
    dues,
    message,
    running_poller,
    settle_sent,
    stored_due,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, content_version


async def test_a_changed_message_supersedes_its_hand_over_and_goes_out_at_its_own_time(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    web.put([message(i, at_offset(-1)) for i in ("moved", "edited", "paused")])
    due = await Watch.start(nc, topology.DUE)
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await eventually(lambda: sorted(due.ids()) == ["edited", "moved", "paused"], 20)
        first = {i: dues(due, i)[0][0] for i in ("moved", "edited", "paused")}
        assert all(d.version for d in first.values()), "hand-overs carry their version"
        moved_to = at_offset(10)

        def edit(messages: list[dict]) -> None:  # the sender is down: nothing was sent yet
            for m in messages:
                if m["id"] == "moved":
                    m["scheduledTime"] = moved_to.isoformat()
                if m["id"] == "edited":
                    m["message"] = "the corrected text"
                if m["id"] == "paused":
                    m["status"] = "failed"  # anything but pending stops it

        web.edit(edit)
        await eventually(lambda: len(dues(due, "edited")) == 2, 20, what="edited handed again")
        await eventually(lambda: len(dues(due, "moved")) == 2, 30, what="moved at its new time")
        await poller.wait_log("loaded 3 messages", times=4)
    stored = web.by_id()
    edited, headers = dues(due, "edited")[1]
    assert edited.message == "the corrected text"
    assert edited.version == content_version(stored["edited"])
    assert headers["Nats-Msg-Id"] == f"due:edited:{edited.version}"
    arrivals = {d.version: at for d, at in await stored_due(js) if d.id == "moved"}
    moved = dues(due, "moved")[1][0]
    assert moved.scheduled_time == moved_to
    late = (arrivals[moved.version] - moved_to).total_seconds()
    assert late >= -0.05, f"the moved message was handed over {-late:.1f}s early"
    assert len(dues(due, "paused")) == 1
    for ident, old in first.items():  # a sender still holding an old version sends nothing
        lost = await claim_as_sender(js, old)
        assert not lost.won and lost.entry.state is LedgerState.SUPERSEDED, (ident, lost.entry)
    assert (await claim_as_sender(js, edited)).won
    assert (await claim_as_sender(js, moved)).won


async def test_a_send_that_began_before_an_edit_says_what_was_sent(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    web.put([message("raced", at_offset(-1))])
    due = await Watch.start(nc, topology.DUE)
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await eventually(lambda: due.ids() == ["raced"], 20)
        handed = dues(due, "raced")[0][0]
        claim = await claim_as_sender(js, handed)  # the send begins
        assert claim.won

        def edit(messages: list[dict]) -> None:
            messages[0]["message"] = "edited after the send began"

        web.edit(edit)
        await poller.wait_log("loaded 1 messages (changed)", times=2)
        await settle_sent(js, handed, claim)
        await eventually(lambda: web.by_id()["raced"]["status"] == "sent", 20)
    stored = web.by_id()["raced"]
    assert stored["message"] == "edited after the send began"  # the user's edit stays
    assert stored["sentAs"] == {
        "version": handed.version,
        "to": PHONE,
        "message": "text of raced",
        "scheduledTime": stored["scheduledTime"],
    }
    assert len(dues(due, "raced")) == 1  # the edit is not sent as well: one send per id


async def test_a_corrected_rejection_is_sent_and_an_unchanged_copy_is_not(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    not_on_wa = message("not-on-wa", at_offset(-5), status="failed", errorKind="not_on_whatsapp")
    web.put(
        [
            message("bad-phone", at_offset(-5), to="+44 12"),
            message("naive", at_offset(-5), scheduledTime="2026-12-24T10:00:00"),
            message("stale-copy", at_offset(-5), to="+44 13"),
            not_on_wa,
        ]
    )
    ledger_kv, _ = await topology.declare(js)
    verdict = LedgerEntry(  # the sender's verdict on the version it was given
        state=LedgerState.FAILED,
        error_kind=ErrorKind.NOT_ON_WHATSAPP,
        error="…9696 is not on WhatsApp",
        version=content_version(not_on_wa),
    )
    await ledger.record_final(ledger_kv, "not-on-wa", verdict)
    due = await Watch.start(nc, topology.DUE)
    async with running_poller(seaweed, prefix, nats_url, tmp_path):

        def rejected() -> bool:
            stored = web.by_id()
            return all(
                stored[i]["status"] == "failed" for i in ("bad-phone", "naive", "stale-copy")
            )

        await eventually(rejected, 20, what="the poller's rejections")
        assert "with a trailing Z" in web.by_id()["naive"]["error"]

        def correct(messages: list[dict]) -> None:
            for m in messages:
                m["status"] = "pending"
                if m["id"] == "bad-phone":
                    m["to"] = PHONE
                if m["id"] == "naive":
                    m["scheduledTime"] = "2026-12-24 10:00"  # still naive
                if m["id"] == "not-on-wa":
                    m["to"] = "447700900123"

        web.edit(correct)
        await eventually(
            lambda: sorted(due.ids()) == ["bad-phone", "not-on-wa"], 20, what="corrected ones"
        )

        def judged_again() -> bool:
            stored = web.by_id()
            return stored["naive"]["status"] == stored["stale-copy"]["status"] == "failed"

        await eventually(judged_again, 20, what="the uncorrected ones failed again")
    stored = web.by_id()
    assert stored["stale-copy"]["status"] == "failed"  # unchanged: the rejection stands
    assert "with a trailing Z" in stored["naive"]["error"]
    assert "2026-12-24 10:00" in stored["naive"]["error"]
    assert stored["bad-phone"]["status"] == stored["not-on-wa"]["status"] == "pending"
    for ident in ("bad-phone", "not-on-wa"):
        assert (await claim_as_sender(js, dues(due, ident)[-1][0])).won
