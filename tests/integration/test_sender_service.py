"""The sender as a real child process (`python -m wasched.sender`, dryrun transport) on a real
nats-server: exactly-once sends, crash safety, refusals, throttle, malformed input.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from tests.support.sending import (
    PHONE,
    Collected,
    collect,
    drained,
    due,
    outbox,
    publish_due,
    sender_process,
)
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from wasched.common import ledger, topology
from wasched.common.events import (
    Heartbeat,
    Outcome,
    Reply,
    SenderStatus,
    SendRequest,
)
from wasched.common.ledger import LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.common.requests import request

NOT_ON_WHATSAPP = "447911123456"


@pytest.fixture
def start_sender(tmp_path: Path, nats_url: str) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(**extra: object) -> ServiceProcess:
        proc = sender_process(nats_url, tmp_path, **extra).start()
        started.append(proc)
        proc.wait_log("sender started", timeout=30)
        return proc

    yield start
    for proc in started:
        proc.kill()


async def raw_request(nc: NATS, subject: str, payload: bytes) -> Reply:
    """Publish any bytes with `Wasched-Reply-To`, as a careless client would, and await the Reply."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    await nc.jetstream().publish(subject, payload, headers={topology.REPLY_HEADER: inbox})
    msg = await sub.next_msg(timeout=10)
    return Reply.model_validate_json(msg.data)


# tests -----------------------------------------------------------------------


async def test_one_id_is_sent_once_however_often_it_arrives(
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    sender = start_sender()
    message = due("dup-1")
    assert await publish_due(js, message)
    assert not await publish_due(js, message), "JetStream dedups the second due:dup-1"
    await eventually(lambda: outcomes.for_id("dup-1"), what="the first outcome")

    # the same id once more after the duplicate window: shrink it so time can pass for real
    config = (await js.stream_info(topology.STREAM)).config
    config.duplicate_window = 0.3
    await js.update_stream(config)
    await eventually(
        lambda: publish_due(js, message), timeout=30, interval=0.2, what="due accepted again"
    )

    # and once on wasched.send, as another system would
    answer = await request(
        nc, topology.SEND, SendRequest(id="dup-1", to=PHONE, message="hello"), "send:dup-1"
    )
    assert (answer.ok, answer.id) == (True, "dup-1"), "the caller hears it was sent"

    await eventually(lambda: drained(js), what="both consumers drained")
    assert [line["id"] for line in outbox(tmp_path)] == ["dup-1"]
    assert sender.log().count("dup-1 is sent already; re-publishing") == 2
    sent = outcomes.for_id("dup-1")
    assert {o.status for o in sent} == {Status.SENT}
    assert len({(o.wa_message_id, o.sent_at) for o in sent}) == 1, "one send, re-published"
    entry = await ledger.read(kv, "dup-1")
    assert entry is not None and entry[0].state is LedgerState.SENT
    assert entry[0].wa_message_id == sent[0].wa_message_id


async def test_sigkill_after_handoff_is_never_sent_again(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    ack_wait = 6  # JetStream redelivers what the killed sender held after this
    slow = start_sender(DRYRUN_SEND_DELAY_SECONDS=60, SENDER_ACK_WAIT_SECONDS=ack_wait)
    await publish_due(js, due("crash-1"))

    async def handed_over_not_recorded() -> bool:
        entry = await ledger.read(kv, "crash-1")
        return bool(outbox(tmp_path)) and entry is not None and not entry[0].is_final

    await eventually(handed_over_not_recorded, what="the outbox line, with only a claim")
    await publish_due(js, due("after-crash"))  # waits behind the send in progress
    slow.kill()
    assert outcomes.for_id("crash-1") == []

    start_sender(SENDER_ACK_WAIT_SECONDS=ack_wait)
    await eventually(lambda: outcomes.for_id("after-crash"), what="the next message")
    assert outcomes.for_id("crash-1") == [], "the dead sender's message did not hold up others"
    timeout = ack_wait + 10
    outcome = (await eventually(lambda: outcomes.for_id("crash-1"), timeout, what="outcome"))[0]
    assert (outcome.status, outcome.error_kind) == (Status.FAILED, ErrorKind.INTERRUPTED)
    assert "may or may not have been delivered" in (outcome.error or "")
    assert [line["id"] for line in outbox(tmp_path)] == ["crash-1", "after-crash"]
    entry = await ledger.read(kv, "crash-1")
    assert entry is not None and entry[0].error_kind is ErrorKind.INTERRUPTED


async def test_refusals_are_recorded_and_nothing_is_sent_for_them(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    await ledger.cancel(kv, "cancelled-1")
    start_sender(DRYRUN_NOT_ON_WHATSAPP=NOT_ON_WHATSAPP)
    for message in (
        due("cancelled-1"),
        due("bad-number", to="12345"),
        due("bad-jid", to="4479@example.com"),
        due("no-whatsapp", to=NOT_ON_WHATSAPP),
        due("too-late", late=2 * 86400),
        due("fine"),
    ):
        await publish_due(js, message)
    ids = ["cancelled-1", "bad-number", "bad-jid", "no-whatsapp", "too-late", "fine"]
    await eventually(lambda: all(outcomes.for_id(i) for i in ids), what="six outcomes")
    got = {i: (outcomes.for_id(i)[0].status, outcomes.for_id(i)[0].error_kind) for i in ids}
    assert got == {
        "cancelled-1": (Status.CANCELLED, None),
        "bad-number": (Status.FAILED, ErrorKind.INVALID_RECIPIENT),
        "bad-jid": (Status.FAILED, ErrorKind.INVALID_RECIPIENT),
        "no-whatsapp": (Status.FAILED, ErrorKind.NOT_ON_WHATSAPP),
        "too-late": (Status.EXPIRED, ErrorKind.EXPIRED),
        "fine": (Status.SENT, None),
    }
    assert "…3456 is not on WhatsApp" in (outcomes.for_id("no-whatsapp")[0].error or "")
    assert [line["id"] for line in outbox(tmp_path)] == ["fine"]
    for message_id, state in [("bad-number", "failed"), ("too-late", "expired")]:
        entry = await ledger.read(kv, message_id)
        assert entry is not None and entry[0].state.value == state


async def test_throttle_never_sends_closer_than_the_minimum_gap(
    nc: NATS,
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    min_gap = 0.4
    for n in range(4):
        await publish_due(js, due(f"t-{n}"))
    start_sender(SEND_MIN_GAP_SECONDS=min_gap, SEND_JITTER_SECONDS=0.2)
    await request(nc, topology.SEND, SendRequest(id="t-send", to=PHONE, message="x"), None)
    await eventually(lambda: len(outbox(tmp_path)) == 5, timeout=20, what="five sends")
    times = [datetime.fromisoformat(line["at"]) for line in outbox(tmp_path)]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # outbox times are written to the millisecond (truncated): allow that 1 ms
    assert min(gaps) >= min_gap - 0.001, gaps


async def test_throttle_gap_holds_across_a_restart(
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    min_gap = 3.0  # longer than a restart takes
    first = start_sender(SEND_MIN_GAP_SECONDS=min_gap)
    await publish_due(js, due("before-restart"))
    await eventually(lambda: outcomes.for_id("before-restart"), what="the first send")
    first.kill()
    start_sender(SEND_MIN_GAP_SECONDS=min_gap)
    await publish_due(js, due("after-restart"))
    await eventually(lambda: outcomes.for_id("after-restart"), what="the second send")
    a, b = (datetime.fromisoformat(line["at"]) for line in outbox(tmp_path))
    assert (b - a).total_seconds() >= min_gap - 0.001


async def test_malformed_input_is_rejected_counted_and_does_not_block(
    nc: NATS,
    js: JetStreamContext,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    beats = await collect(nc, topology.heartbeat_subject("sender"), Heartbeat, stream=False)
    sender = start_sender()
    await js.publish(topology.DUE, b"{not json")
    blank = {"id": "blank-1", "to": PHONE, "message": "  ", "scheduledTime": "2025-12-24T10:00:00Z"}
    await js.publish(topology.DUE, json.dumps(blank).encode())
    answer = await raw_request(nc, topology.SEND, json.dumps({"to": PHONE}).encode())
    assert not answer.ok
    assert "message: Field required" in (answer.error or "")
    await publish_due(js, due("after-junk"))

    await eventually(lambda: outcomes.for_id("after-junk"), what="the valid message sent")
    blank_outcome = outcomes.for_id("blank-1")[0]
    assert (blank_outcome.status, blank_outcome.error_kind) == (
        Status.FAILED,
        ErrorKind.VALIDATION,
    )
    assert "message text is empty" in (blank_outcome.error or "")

    def counted() -> bool:
        details = beats[-1].details if beats else {}
        return details.get("sentSinceStart") == 1 and details.get("rejectedEvents") == {
            topology.DUE: 2,
            topology.SEND: 1,
        }

    await eventually(counted, what="rejectedEvents and sentSinceStart in the heartbeat")
    assert "payload is not valid JSON" in sender.log()
    assert [line["id"] for line in outbox(tmp_path)] == ["after-junk"]
    await eventually(lambda: drained(js), what="nothing left pending")


async def test_send_request_status_pairing_and_clean_shutdown(
    nc: NATS,
    js: JetStreamContext,
    kv: KeyValue,
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    statuses = await collect(nc, topology.SENDER_STATUS, SenderStatus, stream=False)
    sender = start_sender()
    await eventually(lambda: statuses and statuses[-1].state == "connected", what="connected")
    assert statuses[-1].transport == "dryrun"

    answer = await request(nc, topology.SEND, SendRequest(to=f"+{PHONE}", message="now"), None)
    assert answer.ok and answer.id and answer.id.startswith("send-")
    line = outbox(tmp_path)[0]
    assert (line["id"], line["jid"], line["message"]) == (
        answer.id,
        f"{PHONE}@s.whatsapp.net",
        "now",
    )

    msg = await nc.request(topology.PAIR_REQUEST, json.dumps({"phone": PHONE}).encode(), 5)
    pair = Reply.model_validate_json(msg.data)
    assert not pair.ok and "dryrun transport does not pair" in (pair.error or "")

    assert sender.process is not None
    sender.signal(signal.SIGTERM)
    assert await asyncio.to_thread(sender.process.wait, 20) == 0
    await eventually(lambda: statuses[-1].state == "stopped", what="a final stopped status")
    assert "…9696" in sender.log() and PHONE not in _info_lines(sender.log())


async def test_sigterm_mid_send_records_it_and_exits_cleanly(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    start_sender: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    sender = start_sender(DRYRUN_SEND_DELAY_SECONDS=60, SENDER_SHUTDOWN_GRACE_SECONDS=0.5)
    await publish_due(js, due("slow-1"))
    await eventually(lambda: outbox(tmp_path), what="handed over")
    assert sender.process is not None
    sender.signal(signal.SIGTERM)
    assert await asyncio.to_thread(sender.process.wait, 20) == 0
    outcome = (await eventually(lambda: outcomes.for_id("slow-1"), what="its outcome"))[0]
    assert (outcome.status, outcome.error_kind) == (Status.FAILED, ErrorKind.INTERRUPTED)
    assert "abandoning the in-flight send" in sender.log()
    entry = await ledger.read(kv, "slow-1")
    assert entry is not None and entry[0].error_kind is ErrorKind.INTERRUPTED
    await eventually(lambda: drained(js), what="the message acked, not redelivered")


def _info_lines(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if " DEBUG " not in line)
