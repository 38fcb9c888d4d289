"""Claims against real WhatsApp timing, with real sender processes on a real nats-server:
a live claim is never declared dead, the claim is taken at the last moment, a known success
survives a NATS outage and a crash, a caller's Nats-Msg-Id names its request, and a stop of
the whole stack is quiet.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from tests.support.sending import (
    PHONE,
    Collected,
    Senders,
    backlog,
    calls,
    drained,
    due,
    outbox,
    publish_due,
    publish_send,
    senders,
)
from tests.support.waiting import eventually
from wasched.cli.servers import NatsServer
from wasched.common import ledger, topology
from wasched.common.events import Outcome, SendRequest
from wasched.common.ledger import LedgerState
from wasched.common.messages import Status
from wasched.common.requests import request

__all__ = ["senders"]


async def pending_in_sender(js: JetStreamContext) -> int:
    return (await backlog(js))[1]


async def test_two_senders_and_slow_sends_never_declare_a_live_claim_dead(
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    # each send takes longer than the ack wait, and every id arrives three times
    slow = {"DRYRUN_SEND_DELAY_SECONDS": 4, "SENDER_ACK_WAIT_SECONDS": 2}
    senders.start("sender-a", **slow)
    senders.start("sender-b", **slow)
    ids = [f"live-{n}" for n in range(4)]
    for message_id in ids:
        await publish_due(js, due(message_id))
        again = due(message_id)
        await js.publish(topology.DUE, again.to_json(), headers={"Nats-Msg-Id": f"x:{message_id}"})
        await publish_send(js, message_id)
    await eventually(lambda: all(outcomes.for_id(i) for i in ids), timeout=90, what="outcomes")
    await eventually(lambda: drained(js), timeout=90, what="all twelve deliveries acked")
    assert Counter(line["id"] for line in outbox(tmp_path)) == dict.fromkeys(ids, 1)
    kinds = Counter((o.status, o.error_kind) for o in outcomes)
    assert kinds == {(Status.SENT, None): len(outcomes)}, kinds
    for message_id in ids:
        entry = await ledger.read(kv, message_id)
        assert entry is not None and entry[0].state is LedgerState.SENT


async def test_a_message_waiting_for_the_throttle_can_still_be_cancelled(
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    # one message on each input: both are fetched at once, one must wait out the gap
    await publish_due(js, due("first"))
    await publish_send(js, "second")
    senders.start(SEND_MIN_GAP_SECONDS=20)
    sent = await eventually(lambda: outcomes, timeout=30, what="the first send")
    waiting = "second" if sent[0].id == "first" else "first"
    await eventually(lambda: pending_in_sender(js), what="the other one held by the sender")
    standing = await ledger.cancel(kv, waiting)
    assert standing.state is LedgerState.CANCELLED, f"cancel refused: {standing.state}"
    outcome = (await eventually(lambda: outcomes.for_id(waiting), timeout=40))[0]
    assert outcome.status is Status.CANCELLED
    assert [line["id"] for line in outbox(tmp_path)] == [sent[0].id]


async def test_a_crash_while_waiting_for_the_throttle_sends_it_later(
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    await publish_due(js, due("first"))
    await publish_send(js, "second")
    waiter = senders.start(SEND_MIN_GAP_SECONDS=20)
    sent = await eventually(lambda: outcomes, timeout=30, what="the first send")
    waiting = "second" if sent[0].id == "first" else "first"
    await eventually(lambda: pending_in_sender(js), what="the other one held by the sender")
    waiter.kill()
    senders.start("restarted", SENDER_ACK_WAIT_SECONDS=2)
    outcome = (await eventually(lambda: outcomes.for_id(waiting), timeout=40))[0]
    assert (outcome.status, outcome.error_kind) == (Status.SENT, None)
    assert Counter(line["id"] for line in outbox(tmp_path)) == {"first": 1, "second": 1}


async def test_a_success_outlives_a_nats_outage_and_a_crash(
    nats_server_proc: NatsServer,
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    first = senders.start(faulty=True, DRYRUN_SEND_DELAY_SECONDS=3)
    await publish_due(js, due("kept-1"))
    await eventually(lambda: outbox(tmp_path), what="handed to WhatsApp")
    nats_server_proc.stop()  # WhatsApp answers while NATS is away ...
    await eventually(lambda: calls(tmp_path, "sent"), timeout=20, what="WhatsApp's answer")
    first.wait_log("recording kept-1 in the ledger failed", timeout=30)
    first.kill()  # ... and the sender dies before NATS is back
    nats_server_proc.start()
    senders.start("after-outage")
    outcome = (await eventually(lambda: outcomes.for_id("kept-1"), timeout=60))[0]
    assert (outcome.status, outcome.error_kind) == (Status.SENT, None)
    assert outcome.wa_message_id == calls(tmp_path, "sent")[0]["waMessageId"]
    entry = await ledger.read(kv, "kept-1")
    assert entry is not None and entry[0].state is LedgerState.SENT
    assert [line["id"] for line in outbox(tmp_path)] == ["kept-1"]


async def test_a_send_request_retried_with_its_msg_id_is_sent_once(
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    senders.start()
    payload = SendRequest(to=PHONE, message="once please")  # no id in the payload
    first = await request(nc, topology.SEND, payload, "req-7")
    assert first.ok and first.id == "req-7"
    # the caller never saw its PubAck and retries after JetStream forgot the first one
    stream = await js.find_stream_name_by_subject(topology.SEND)
    config = (await js.stream_info(stream)).config
    config.duplicate_window = 0.3
    await js.update_stream(config)

    async def stored_again() -> bool:
        ack = await js.publish(topology.SEND, payload.to_json(), headers={"Nats-Msg-Id": "req-7"})
        return not ack.duplicate

    await eventually(stored_again, interval=0.2, what="the retry stored as a new message")
    await eventually(lambda: drained(js), what="the retry handled")
    assert [line["id"] for line in outbox(tmp_path)] == ["req-7"]
    assert {o.status for o in outcomes.for_id("req-7")} == {Status.SENT}


async def test_stopping_the_whole_stack_logs_no_error(
    nats_server_proc: NatsServer, senders: Senders, tmp_path: Path
) -> None:
    sender = senders.start()
    assert sender.process is not None
    # docker compose down: every container gets SIGTERM at the same moment
    sender.signal(signal.SIGTERM)
    await asyncio.to_thread(nats_server_proc.stop)
    code = await asyncio.to_thread(sender.process.wait, 30)
    log = sender.log()
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    assert errors == [], "\n".join(errors)
    assert code == 0, log[-2000:]
    assert "sender stopped" in log
