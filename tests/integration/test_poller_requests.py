"""Other systems schedule and cancel messages over NATS and get a clear answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from tests.conftest import TEST_BUCKET
from tests.integration.test_poller_kit import (
    PHONE,
    Watch,
    WebUi,
    at_offset,
    message,
    running_poller,
    stream_messages,
)
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.events import CancelRequest, Reply, ScheduleRequest
from wasched.common.ledger import LedgerState
from wasched.common.requests import request


async def raw_request(nc: NATS, subject: str, body: bytes) -> Reply:
    """A malformed request, published the way `requests.request` does."""
    inbox = nc.new_inbox()
    answer: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    async def on_reply(msg: Msg) -> None:
        answer.set_result(msg)

    sub = await nc.subscribe(inbox, cb=on_reply, max_msgs=1)
    await nc.jetstream().publish(subject, body, headers={topology.REPLY_HEADER: inbox})
    try:
        return Reply.model_validate_json((await asyncio.wait_for(answer, 10)).data)
    finally:
        await sub.unsubscribe()


async def test_schedule_requests_add_once_refuse_conflicts_and_explain_bad_input(
    moto: S3Server, prefix: str, nats_url: str, nc: NATS, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    web.put([message("existing", at_offset(86400))])
    due = await Watch.start(nc, topology.DUE)
    beats = await Watch.start(nc, topology.heartbeat_subject("poller"))
    wanted = ScheduleRequest(
        id="api-1",
        to="+44 7957 189696",
        message="sent from another system",
        scheduled_time=at_offset(-1),
        createdFrom="crm",  # type: ignore[call-arg]  # extra fields are kept as given
    )
    async with running_poller(moto, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=1):
        assert await request(nc, topology.SCHEDULE, wanted, "schedule:api-1") == Reply(
            ok=True, id="api-1"
        )
        again = await request(nc, topology.SCHEDULE, wanted, "schedule:api-1-again")
        assert again == Reply(ok=True, id="api-1")
        other = wanted.model_copy(update={"message": "different text"})
        refused = await request(nc, topology.SCHEDULE, other, "schedule:api-1-other")
        assert not refused.ok
        assert refused.error == (
            "id 'api-1' is already in the schedule with different message; use a new id"
        )
        bad = await raw_request(nc, topology.SCHEDULE, b'{"id": "x", "to": "447957189696"}')
        assert not bad.ok
        assert bad.error is not None and "message: Field required" in bad.error
        assert "scheduledTime: Field required" in bad.error
        await eventually(lambda: due.ids() == ["api-1"], 10, what="requested message due")
        counted = await eventually(
            lambda: [
                b for b in beats.heartbeats() if b.details["rejectedEvents"].get(topology.SCHEDULE)
            ],
            10,
        )
        assert counted[-1].details["rejectedEvents"][topology.SCHEDULE] == 2
    stored = [m for m in web.messages() if m["id"] == "api-1"]
    assert len(stored) == 1
    assert stored[0]["createdFrom"] == "crm"
    assert stored[0]["to"] == "+44 7957 189696"
    assert stored[0]["status"] == "pending"


async def test_cancel_request_stops_a_scheduled_message(
    moto: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    web.put(
        [message("call-mum", at_offset(600)), message("sent-one", at_offset(-60), status="sent")]
    )
    due = await Watch.start(nc, topology.DUE)
    async with running_poller(moto, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=30) as p:
        await p.wait_log("scheduled 1 for later")
        answer = await request(nc, topology.CANCEL, CancelRequest(id="call-mum"), "cancel:c1")
        assert answer == Reply(ok=True, id="call-mum")
        # the schedule is gone from the stream, so NATS can never fire it:
        assert await stream_messages(js, topology.schedule_subject("call-mum")) == []
        await eventually(lambda: web.by_id()["call-mum"]["status"] == "cancelled", 10)
        too_late = await request(nc, topology.CANCEL, CancelRequest(id="sent-one"), "cancel:c2")
        assert too_late == Reply(
            ok=False, error="message 'sent-one' is already sent; it can no longer be cancelled"
        )
        unknown = await request(nc, topology.CANCEL, CancelRequest(id="nope"), "cancel:c3")
        assert unknown.error == "no message with id 'nope' in the schedule"
        await p.wait_log("message call-mum cancelled")
    ledger_kv = await js.key_value(topology.LEDGER_BUCKET)
    found = await ledger.read(ledger_kv, "call-mum")  # and a sender holding it would skip it
    assert found is not None and found[0].state is LedgerState.CANCELLED
    assert due.ids() == []
    assert web.by_id()["call-mum"]["error"] == "cancelled on request"
    assert web.by_id()["call-mum"]["to"] == PHONE


async def test_schedule_requests_with_local_time_repeat_and_media_or_a_clear_error(
    moto: S3Server, prefix: str, nats_url: str, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    """Issue 15: the new fields are checked at intake like a stored message's; bad input gets
    a per-message error and the document is not touched."""
    web = WebUi(moto, prefix)
    web.put([message("existing", at_offset(86400))])
    web.client.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}media/card.jpg", Body=b"\xff\xd8\xff")

    def wanted(ident: str, **fields: object) -> ScheduleRequest:
        return ScheduleRequest.model_validate(
            {
                "id": ident,
                "to": PHONE,
                "message": "Bins out",
                "scheduledTime": "2027-01-04T19:00:00",
                "timezone": "Europe/London",
                **fields,
            }
        )

    bad = {
        "bad-rule": (wanted("bad-rule", repeat="FREQ=WEEKLY;BYDAY=XX"), "repeat: BYDAY"),
        "bad-zone": (wanted("bad-zone", timezone="europe/london"), "did you mean 'Europe/London'?"),
        "ftp": (
            wanted("ftp", media={"type": "image", "url": "ftp://example.org/a.jpg"}),
            "media.url: must start with http:// or https://",
        ),
        "no-object": (
            wanted("no-object", media={"type": "image", "key": f"{prefix}media/gone.jpg"}),
            f"media.key: there is no object '{prefix}media/gone.jpg'",
        ),
    }
    async with running_poller(moto, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=1) as poller:
        before = web.get_bytes()[0]
        for ident, (event, says) in bad.items():
            reply = await request(nc, topology.SCHEDULE, event, f"schedule:{ident}")
            assert not reply.ok and says in (reply.error or ""), reply
            assert f"message '{ident}'" in (reply.error or "")
        assert web.get_bytes()[0] == before  # nothing else touched

        series = wanted("bins", repeat="FREQ=WEEKLY;COUNT=3")
        assert (await request(nc, topology.SCHEDULE, series, "schedule:bins")).ok
        card = wanted("card", media={"type": "image", "key": f"{prefix}media/card.jpg"})
        assert (await request(nc, topology.SCHEDULE, card, "schedule:card")).ok
        await poller.wait_log("updated the record of series bins")
    stored = web.by_id()
    assert stored["bins"]["scheduledTime"] == "2027-01-04T19:00:00"  # the wall time as written
    assert stored["bins"]["nextAt"] == "2027-01-04T19:00:00.000Z"  # GMT in January
    assert stored["card"]["media"] == {"type": "image", "key": f"{prefix}media/card.jpg"}
    assert set(stored) == {"existing", "bins", "card"}
