"""The ledger is the truth for receipts and stale claims too (issue 11, item 13)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from nats.js import JetStreamContext

from tests.integration.test_poller_kit import (
    SENT_AT,
    WebUi,
    at_offset,
    message,
    publish,
    report_sent,
    running_poller,
    utcnow,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.events import Receipt
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind
from wasched.common.topology import ledger_key

DELIVERED = SENT_AT + timedelta(seconds=3)
READ = SENT_AT + timedelta(minutes=2)


async def test_receipts_wiped_by_a_stale_writer_are_restored_from_the_ledger(
    seaweed: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    original = [message("r", at_offset(-60))]
    web.put(original)
    async with running_poller(seaweed, prefix, nats_url, tmp_path):
        await report_sent(js, "r")
        for kind, at in (("delivered", DELIVERED), ("read", READ)):
            await publish(
                js, topology.RECEIPT, Receipt(id="r", kind=kind, at=at), f"receipt:r:{kind}"
            )
        await eventually(lambda: "readAt" in web.by_id()["r"], 20, what="receipts written")
        sent_copy = dict(web.by_id()["r"], deliveredAt=None)
        del sent_copy["readAt"]
        web.put([sent_copy])  # a stale writer's copy: sent, but from before the receipts
        await eventually(lambda: web.by_id()["r"].get("readAt"), 20, what="receipts restored")
        web.put(original)  # an older copy still: pending
        await eventually(lambda: web.by_id()["r"]["status"] == "sent", 20, what="outcome restored")
        await eventually(lambda: web.by_id()["r"].get("readAt"), 20, what="receipts restored")
    stored = web.by_id()["r"]
    assert stored["deliveredAt"] == "2025-12-24T10:00:05.311Z"
    assert stored["readAt"] == "2025-12-24T10:02:02.311Z"


async def test_a_stale_claim_is_written_interrupted_to_the_ledger_and_the_document(
    seaweed: S3Server, prefix: str, nats_url: str, js: JetStreamContext, tmp_path: Path
) -> None:
    ledger_kv, _ = await topology.declare(js)
    hung = LedgerEntry(state=LedgerState.CLAIMED, at=utcnow() - timedelta(minutes=11), holder="x")
    await ledger_kv.create(ledger_key("hung"), hung.to_json())
    web = WebUi(seaweed, prefix)
    web.put([message("hung", at_offset(-700))])
    async with running_poller(seaweed, prefix, nats_url, tmp_path):
        await eventually(lambda: web.by_id()["hung"]["status"] == "failed", 20)
    assert web.by_id()["hung"]["errorKind"] == "interrupted"
    found = await ledger.read(ledger_kv, "hung")
    assert found is not None
    entry = found[0]
    assert (entry.state, entry.error_kind) == (LedgerState.FAILED, ErrorKind.INTERRUPTED)
