"""Outcomes reach the stored document, without losing other writers' edits or S3 outages."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.conftest import TEST_BUCKET, test_server
from tests.integration.test_poller_kit import (
    SENT_AT,
    Watch,
    WebUi,
    at_offset,
    message,
    publish,
    report_sent,
    running_poller,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server, ensure_bucket, free_port, seaweed_server
from wasched.common import ledger, topology
from wasched.common.events import Outcome, Receipt
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import Status


async def consumer_settled(js: JetStreamContext, durable: str) -> bool:
    info = await js.consumer_info(topology.STREAM, durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_outcomes_land_while_another_writer_keeps_editing(
    seaweed: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    ids = [f"m{i}" for i in range(30)]
    web = WebUi(seaweed, prefix)
    web.put([message(i, at_offset(86400 * 3)) for i in ids])
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:

        async def outcomes() -> None:
            for ident in ids:
                await report_sent(js, ident)
                await asyncio.sleep(0.02)

        def web_edits() -> None:  # the web UI, writing the whole time
            for n in range(15):
                web.edit(lambda ms, n=n: ms.append(message(f"web-{n}", at_offset(86400 * 4))))
                web.edit(lambda ms, n=n: ms[n].update(contactName=f"edited {n}"))

        await asyncio.gather(outcomes(), asyncio.to_thread(web_edits))
        await publish(
            js, topology.RECEIPT, Receipt(id="m0", kind="delivered", at=SENT_AT), "receipt:m0:d"
        )

        def settled() -> bool:
            stored = web.by_id()
            return all(stored[i]["status"] == "sent" for i in ids) and "deliveredAt" in stored["m0"]

        await eventually(settled, 30, what="every outcome in the document")
        await eventually(lambda: consumer_settled(js, topology.POLLER_OUTCOME), 10)
        conflicts = poller.log().count("changed by another writer during our write")
    stored = web.by_id()
    assert all(f"web-{n}" in stored for n in range(15)), "the web UI's additions were lost"
    assert [stored[f"m{n}"]["contactName"] for n in range(15)] == [f"edited {n}" for n in range(15)]
    assert stored["m3"]["sentAt"] == "2025-12-24T10:00:02.311Z"
    assert stored["m3"]["waMessageId"] == "WA-m3"
    assert stored["m0"]["deliveredAt"] == "2025-12-24T10:00:02.311Z"
    print(f"conflicting writes re-applied by the poller: {conflicts}")


async def test_outcome_for_a_message_no_longer_in_the_document_is_acked(
    seaweed: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    web.put([message("kept", at_offset(86400))])
    body_before, _ = web.get_bytes()
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await report_sent(js, "deleted-meanwhile")
        await poller.wait_log("outcome for deleted-meanwhile: no such message in the schedule")
        stray = Outcome(id="kept", status=Status.SENT, wa_message_id="forged")
        await publish(js, topology.OUTCOME, stray, "outcome:kept:sent")  # no send behind it
        await poller.wait_log("ignored a wasched.outcome for kept: the ledger has no send")
        await eventually(lambda: consumer_settled(js, topology.POLLER_OUTCOME), 10)
    assert web.get_bytes()[0] == body_before  # nothing to write, nothing written


async def test_outcomes_wait_out_an_s3_outage_and_none_is_lost(
    prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    server = test_server(seaweed_server(tmp_path / "s3", bucket=TEST_BUCKET, s3_port=free_port()))
    server.start(timeout=60)
    try:
        ensure_bucket(server, TEST_BUCKET)
        web = WebUi(server, prefix)
        ids = [f"o{i}" for i in range(5)]
        web.put([message(i, at_offset(86400)) for i in ids])
        async with running_poller(server, prefix, nats_url, tmp_path) as poller:
            server.kill()  # S3 gone, as in a crash
            for ident in ids:
                await report_sent(js, ident)
            await poller.wait_log("could not save", times=2)
            info = await js.consumer_info(topology.STREAM, topology.POLLER_OUTCOME)
            assert info.ack_floor is not None and info.ack_floor.consumer_seq == 0  # none acked
            server.start(timeout=60)
            ensure_bucket(server, TEST_BUCKET)
            await eventually(
                lambda: all(m["status"] == "sent" for m in web.messages()),
                45,
                what="outcomes written after S3 came back",
            )
            await eventually(lambda: consumer_settled(js, topology.POLLER_OUTCOME), 10)
            assert "S3 unreachable" in poller.log()
        assert sorted(m["waMessageId"] for m in web.messages()) == [f"WA-{i}" for i in ids]
    finally:
        server.kill()


async def test_outcome_wiped_by_another_writer_is_restored_from_the_ledger_never_resent(
    seaweed: S3Server,
    prefix: str,
    nats_url: str,
    nc: NATS,
    js: JetStreamContext,
    tmp_path: Path,
) -> None:
    ledger_kv, _ = await topology.declare(js)
    claim = await ledger.claim(ledger_kv, "wiped", jid="447957189696@s.whatsapp.net")
    done = LedgerEntry(state=LedgerState.SENT, sent_at=SENT_AT, wa_message_id="WA-wiped")
    await ledger.settle(ledger_kv, "wiped", done, claim.revision)
    web = WebUi(seaweed, prefix)
    web.put([message("wiped", at_offset(-30))])  # a stale copy: still pending
    due = await Watch.start(nc, topology.DUE)
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await eventually(lambda: web.by_id()["wiped"]["status"] == "sent", 15, what="restored")
        await poller.wait_log("restored 1 outcome(s) from the ledger: wiped")
        await poller.wait_log("loaded 1 messages (unchanged)", times=2)
    assert web.by_id()["wiped"]["sentAt"] == "2025-12-24T10:00:02.311Z"
    assert web.by_id()["wiped"]["waMessageId"] == "WA-wiped"
    assert due.ids() == []
