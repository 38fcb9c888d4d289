"""The real sender process with a WhatsApp transport that fails on cue (tests/support/faulty.py),
on a real nats-server: every class of whatsmeow error gets the right outcome, what may have
reached WhatsApp is never retried, what certainly did not is sent exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from tests.support.sending import (
    Collected,
    Senders,
    calls,
    collect,
    drained,
    due,
    outbox,
    publish_due,
    senders,
    write_script,
)
from tests.support.waiting import eventually
from wasched.common import ledger, topology
from wasched.common.events import Outcome, SenderStatus
from wasched.common.messages import ErrorKind, Status

__all__ = ["senders"]

SENT = (Status.SENT, None)
INTERRUPTED = (Status.FAILED, ErrorKind.INTERRUPTED)
REFUSED = (Status.FAILED, ErrorKind.WHATSAPP_ERROR)


# (message id, what the client does on each attempt, expected outcome, hand-overs, attempts)
CASES = [
    ("ns-node", ["before:failed to send message node: websocket not connected", "ok"], SENT, 1, 2),
    (
        "ns-devices",
        [
            "before:failed to get device list: failed to send usync query: info query timed out",
            "ok",
        ],
        SENT,
        1,
        2,
    ),
    ("amb-retry", ["after:websocket not connected"], INTERRUPTED, 1, 1),
    ("amb-closed", ["after:frame socket is closed"], INTERRUPTED, 1, 1),
    ("amb-ack", ["after:timed out waiting for message send response"], INTERRUPTED, 1, 1),
    ("amb-hang", ["hang"], INTERRUPTED, 1, 1),
    ("refused", ["before:server returned error 463"], REFUSED, 0, 1),
]


async def test_each_error_class_gets_its_outcome_and_only_unsent_ones_are_retried(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    script = write_script(tmp_path, {case[0]: case[1] for case in CASES})
    senders.start(faulty=True, FAULTY_SCRIPT=script, SEND_TIMEOUT_SECONDS=2)
    for case in CASES:
        await publish_due(js, due(case[0]))
    ids = [case[0] for case in CASES]

    def settled_or_duplicated() -> bool:
        handed = Counter(line["id"] for line in outbox(tmp_path))
        return all(outcomes.for_id(i) for i in ids) or any(n > 1 for n in handed.values())

    await eventually(settled_or_duplicated, timeout=60, what="an outcome for every message")
    handed = Counter(line["id"] for line in outbox(tmp_path))
    got = {i: {(o.status.value, o.error_kind) for o in outcomes.for_id(i)} for i in ids}
    assert {i: handed[i] for i in ids} == {case[0]: case[3] for case in CASES}, "hand-overs"
    assert got == {case[0]: {(case[2][0].value, case[2][1])} for case in CASES}, "outcomes"
    await eventually(lambda: drained(js), what="every message acked")
    for message_id, _, expected, _, attempts in CASES:
        assert len(calls(tmp_path, "send", message_id)) == attempts, message_id
        entry = await ledger.read(kv, message_id)
        assert entry is not None and entry[0].state.value == expected[0].value
    assert "reach-out timelock" in (outcomes.for_id("refused")[0].error or "")
    assert "client said: websocket not connected" in (outcomes.for_id("amb-retry")[0].error or "")


async def test_a_failing_typing_indicator_never_strands_a_claim(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    script = write_script(tmp_path, {"typing": ["before:WhatsApp client not connected", "ok"]})
    senders.start(faulty=True, FAULTY_SCRIPT=script, SEND_TYPING_SECONDS=0.05)
    await publish_due(js, due("typed-1"))
    outcome = (await eventually(lambda: outcomes.for_id("typed-1"), timeout=30))[0]
    assert (outcome.status, outcome.error_kind) == SENT
    assert [line["id"] for line in outbox(tmp_path)] == ["typed-1"]


async def test_the_message_goes_to_the_number_whatsapp_answers(
    js: JetStreamContext,
    kv: KeyValue,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    # a Mexican mobile written without the 1 that WhatsApp keeps in its JID
    script = write_script(tmp_path, {"lookup:525512345678": ["canonical:5215512345678"]})
    senders.start(faulty=True, FAULTY_SCRIPT=script)
    await publish_due(js, due("mx-1", to="+52 55 1234 5678"))
    outcome = (await eventually(lambda: outcomes.for_id("mx-1"), timeout=30))[0]
    assert outcome.status is Status.SENT
    assert [line["jid"] for line in outbox(tmp_path)] == ["5215512345678@s.whatsapp.net"]
    entry = await ledger.read(kv, "mx-1")
    assert entry is not None and entry[0].jid == "5215512345678@s.whatsapp.net"


async def test_a_replaced_session_stays_replaced_until_the_operator_takes_it_back(
    nc: NATS,
    js: JetStreamContext,
    nats_url: str,
    outcomes: Collected[Outcome],
    senders: Senders,
    tmp_path: Path,
) -> None:
    from wasched.cli.main import run as wasched

    statuses = await collect(nc, topology.SENDER_STATUS, SenderStatus, stream=False)
    replaced = write_script(tmp_path, {"start": ["replaced"]})
    first = senders.start(faulty=True, FAULTY_SCRIPT=replaced)
    await eventually(lambda: statuses and statuses[-1].state == "replaced", what="replaced")
    first.kill()  # a host reboot, a restart policy: the session must not be taken back
    seen = len(statuses)
    senders.start("restarted", faulty=True)
    await eventually(lambda: len(statuses) >= seen + 4, what="the restarted sender's statuses")
    assert {s.state for s in statuses[seen + 1 :]} == {"replaced"}, "it took the session back"
    await publish_due(js, due("after-take-over"))
    assert outcomes.for_id("after-take-over") == []

    code = await asyncio.to_thread(wasched, ["--nats-url", nats_url, "pair", "--take-over"])
    assert code == 0
    outcome = (await eventually(lambda: outcomes.for_id("after-take-over"), timeout=30))[0]
    assert outcome.status is Status.SENT
