"""Bad documents and bad messages: never overwritten, never blocking the others."""

from __future__ import annotations

import json
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.integration.test_poller_kit import (
    Watch,
    WebUi,
    at_offset,
    message,
    report_sent,
    running_poller,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.ledger import LedgerState

CORRUPT = b'{"messages": [\n  {"id": "a", "to": "447957189696", "message": "hi",\n'


async def test_corrupt_document_is_never_overwritten_and_outcomes_wait_for_the_fix(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    web.put_bytes(CORRUPT)
    _, etag = web.get_bytes()
    beats = await Watch.start(nc, topology.heartbeat_subject("poller"))
    async with running_poller(seaweed, prefix, nats_url, tmp_path) as poller:
        await report_sent(js, "a")
        await poller.wait_log("schedule is not valid JSON", times=2)
        await poller.wait_log("could not save 1 outcome")
        assert web.get_bytes() == (CORRUPT, etag)  # same bytes, same version
        reported = await eventually(
            lambda: [b for b in beats.heartbeats() if b.details.get("lastError")], 10
        )
        assert "schedule is not valid JSON" in reported[-1].details["lastError"]
        assert "at line 3 column 1" in reported[-1].details["lastError"]
        web.put([message("a", at_offset(3600))])  # someone fixes it
        await eventually(lambda: web.by_id()["a"]["status"] == "sent", 20, what="outcome saved")
    assert "Traceback" not in poller.log()


async def test_bad_messages_fail_alone_and_over_late_ones_expire(
    seaweed: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(seaweed, prefix)
    untouched = message("done", at_offset(-7200), status="sent", sentAt="2025-12-23T08:50:02.311Z")
    untouched["webUiColour"] = {"nested": [1, 2, 3]}
    web.put(
        [
            message("bad-date", at_offset(-5), scheduledTime="next tuesday"),
            message("no-to", at_offset(-5), to=""),
            message("bad-phone", at_offset(-5), to="+44 12"),
            message("good", at_offset(-5), webUiColour="blue"),
            message("good", at_offset(-5)),  # the same id again
            message("too-late", at_offset(-2 * 86400)),
            message("past-expiry", at_offset(-5), expiresAt="2020-01-01T00:00:00Z"),
            untouched,
            message("future", at_offset(86400 * 2)),
        ]
    )
    watch = await Watch.start(nc, topology.DUE)
    async with running_poller(seaweed, prefix, nats_url, tmp_path):

        def settled() -> bool:
            return [m["status"] for m in web.messages()].count("pending") == 2

        await eventually(settled, 20, what="every bad message settled")
        await eventually(lambda: watch.ids() == ["good"], 10, what="good message dispatched")
    stored = web.messages()
    by_id = {m["id"]: m for m in stored}
    assert (by_id["bad-date"]["status"], by_id["bad-date"]["errorKind"]) == ("failed", "validation")
    assert "scheduledTime: not an ISO-8601 time: 'next tuesday'" in by_id["bad-date"]["error"]
    assert (by_id["no-to"]["errorKind"], by_id["no-to"]["error"]) == (
        "validation",
        "to is missing or empty",
    )
    assert by_id["bad-phone"]["errorKind"] == "invalid_recipient"
    assert "…4412" in by_id["bad-phone"]["error"]
    assert stored[3]["status"] == "pending"  # the first "good"
    assert stored[3]["webUiColour"] == "blue"
    assert stored[4]["status"] == "failed"  # its repeat
    assert "'good' repeats an earlier message's id" in stored[4]["error"]
    assert (by_id["too-late"]["status"], by_id["too-late"]["errorKind"]) == ("expired", "expired")
    assert "2 d late" in by_id["too-late"]["error"]
    assert by_id["past-expiry"]["status"] == "expired"
    assert by_id["done"] == json.loads(json.dumps(untouched))
    assert by_id["future"]["status"] == "pending"
    ledger_kv = await js.key_value(topology.LEDGER_BUCKET)
    found = await ledger.read(ledger_kv, "too-late")
    assert found is not None and found[0].state is LedgerState.EXPIRED  # no sender may send it
