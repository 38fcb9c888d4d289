"""Stream, KV and dedup against a real nats-server."""

from __future__ import annotations

import asyncio
import json

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, StreamConfig

from tests.support.waiting import eventually
from wasched.common import ledger, topology
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.mirror import LedgerMirror
from wasched.sender.inbound import generated_id


async def test_declaring_twice_is_harmless(js: JetStreamContext) -> None:
    await topology.declare(js)
    await topology.declare(js)
    info = await js.stream_info(topology.STREAM)
    assert info.config.allow_msg_schedules
    assert info.config.duplicate_window >= 600
    assert set(topology.STREAM_SUBJECTS) == set(info.config.subjects or [])
    assert (await js.key_value(topology.LEDGER_BUCKET)).__class__.__name__ == "KeyValue"
    requests = await js.stream_info(topology.IN_STREAM)
    assert set(requests.config.subjects or []) == set(topology.IN_SUBJECTS)
    assert not requests.config.allow_msg_schedules
    assert requests.config.duplicate_window >= 600


async def test_every_stream_is_capped_so_a_flood_cannot_fill_the_disk(js: JetStreamContext) -> None:
    await topology.declare(js)
    for name in (topology.STREAM, topology.IN_STREAM):
        config = (await js.stream_info(name)).config
        assert config.max_bytes and 0 < config.max_bytes <= 1 << 30
    requests = (await js.stream_info(topology.IN_STREAM)).config
    assert requests.discard == DiscardPolicy.NEW  # a flood is refused, stored requests stay


ROUND_1_SUBJECTS = [
    "wasched.due", "wasched.sched.*", "wasched.fire", "wasched.send", "wasched.schedule",
    "wasched.cancel", "wasched.outcome", "wasched.receipt",
]  # fmt: skip


async def _round_1(js: JetStreamContext) -> dict[str, int]:
    """The round-1 layout: requests on WASCHED, with their durables and some backlog."""
    await js.add_stream(
        StreamConfig(
            name=topology.STREAM,
            subjects=ROUND_1_SUBJECTS,
            allow_msg_schedules=True,
            duplicate_window=topology.DUPLICATE_WINDOW_SECONDS,
            max_age=30 * 86400,
        )
    )
    for durable, subject in topology.REQUEST_CONSUMERS.items():
        config = ConsumerConfig(
            durable_name=durable, filter_subject=subject, ack_policy=AckPolicy.EXPLICIT
        )
        await js.add_consumer(topology.STREAM, config)
    seqs = {}
    for key, subject, body in (
        ("done", topology.SEND, b'{"id": "done", "to": "447957189696", "message": "a"}'),
        ("named", topology.SEND, b'{"id": "named", "to": "447957189696", "message": "b"}'),
        ("anonymous", topology.SEND, b'{"to": "447957189696", "message": "c"}'),
        ("schedule", topology.SCHEDULE, b'{"id": "later"}'),
        ("cancel", topology.CANCEL, b'{"id": "gone"}'),
    ):
        headers = {topology.REPLY_HEADER: "_INBOX.client.r1"}
        if key != "anonymous":
            headers["Nats-Msg-Id"] = f"{subject}:{key}"
        seqs[key] = (await js.publish(subject, body, headers=headers)).seq
    consumed = await js.pull_subscribe_bind(durable=topology.SENDER_SEND, stream=topology.STREAM)
    (first,) = await consumed.fetch(1, timeout=5)
    await first.ack_sync()  # "done" was sent before the upgrade
    await consumed.unsubscribe()
    return seqs


async def _pending(js: JetStreamContext, durable: str, subject: str) -> list[Msg]:
    config = ConsumerConfig(
        durable_name=durable, filter_subject=subject, ack_policy=AckPolicy.EXPLICIT
    )
    await js.add_consumer(topology.IN_STREAM, config)
    sub = await js.pull_subscribe_bind(durable=durable, stream=topology.IN_STREAM)
    try:
        return await sub.fetch(10, timeout=1)
    except TimeoutError:
        return []
    finally:
        await sub.unsubscribe()


async def test_a_round_1_deployment_is_migrated_and_nothing_unconsumed_is_lost(
    js: JetStreamContext,
) -> None:
    seqs = await _round_1(js)
    anonymous = await js.get_msg(topology.STREAM, seq=seqs["anonymous"])
    await topology.declare(js)
    await topology.declare(js)  # a second service declaring afterwards changes nothing

    main = await js.stream_info(topology.STREAM)
    assert set(main.config.subjects or []) == set(topology.STREAM_SUBJECTS)
    assert {c.name for c in await js.consumers_info(topology.STREAM)} == set()
    sends = await _pending(js, topology.SENDER_SEND, topology.SEND)
    bodies = [json.loads(m.data) for m in sends]
    assert [b["message"] for b in bodies] == ["b", "c"]  # not "a": it was consumed
    assert bodies[0]["id"] == "named"
    assert anonymous.time is not None
    assert bodies[1]["id"] == generated_id(seqs["anonymous"], anonymous.time)
    assert all(m.headers and m.headers[topology.REPLY_HEADER] for m in sends)
    (schedule,) = await _pending(js, topology.POLLER_SCHEDULE, topology.SCHEDULE)
    (cancel,) = await _pending(js, topology.POLLER_CANCEL, topology.CANCEL)
    assert json.loads(schedule.data) == {"id": "later"}
    assert json.loads(cancel.data) == {"id": "gone"}
    # requests now reach the new stream; schedules cannot be attached to them
    ack = await js.publish(topology.SEND, b"{}")
    assert ack.stream == topology.IN_STREAM


async def test_same_msg_id_is_stored_once(js: JetStreamContext) -> None:
    await topology.declare(js)
    headers = topology.msg_id_header("due", "1735168500123_a1b2c3")
    first = await js.publish(topology.DUE, b"{}", headers=headers)
    second = await js.publish(topology.DUE, b"{}", headers=headers)
    assert not first.duplicate
    assert second.duplicate
    info = await js.stream_info(topology.STREAM)
    assert info.state.messages == 1


async def test_exactly_one_concurrent_claim_wins(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    claims = await asyncio.gather(*(ledger.claim(kv, "new-year") for _ in range(20)))
    assert sum(c.won for c in claims) == 1
    assert all(c.entry.state is LedgerState.CLAIMED for c in claims)


async def test_settled_entry_is_what_later_claims_see(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    won = await ledger.claim(kv, "m1")
    await ledger.settle(
        kv, "m1", LedgerEntry(state=LedgerState.SENT, wa_message_id="3EB0"), won.revision
    )
    later = await ledger.claim(kv, "m1")
    assert not later.won
    assert later.entry.state is LedgerState.SENT
    assert later.entry.outcome("m1").wa_message_id == "3EB0"


async def test_an_unfinished_claim_reads_as_interrupted(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.claim(kv, "m2")
    again = await ledger.claim(kv, "m2")
    outcome = again.entry.outcome("m2")
    assert outcome.status == "failed"
    assert outcome.error_kind == "interrupted"
    assert "may or may not have been delivered" in (outcome.error or "")


async def test_cancel_does_not_override_a_claim(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    assert (await ledger.cancel(kv, "free")).state is LedgerState.CANCELLED
    assert not (await ledger.claim(kv, "free")).won
    await ledger.claim(kv, "busy")
    assert (await ledger.cancel(kv, "busy")).state is LedgerState.CLAIMED


async def test_uncancel_only_removes_cancellations(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.cancel(kv, "c")
    assert await ledger.uncancel(kv, "c")
    assert (await ledger.claim(kv, "c")).won
    assert not await ledger.uncancel(kv, "c")  # claimed: untouched
    assert (await ledger.read(kv, "c"))[0].state is LedgerState.CLAIMED


async def test_ids_with_odd_characters_get_valid_keys(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    for odd in ("a b", "ünï", "x.y*z>", "id/with/slash"):
        assert (await ledger.claim(kv, odd)).won
        assert not (await ledger.claim(kv, odd)).won


async def test_ledger_mirror_follows_the_bucket(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.cancel(kv, "before-start")
    mirror = LedgerMirror(js)
    await mirror.start()
    try:
        assert mirror.get("before-start").state is LedgerState.CANCELLED
        assert mirror.take_changed() == set()  # the first poll decides on everything anyway
        claim = await ledger.claim(kv, "odd id/1")
        await eventually(lambda: mirror.get("odd id/1"), what="claim in the mirror")
        assert mirror.take_changed() == {"odd id/1"}  # the poll decides on it again
        await ledger.settle(kv, "odd id/1", LedgerEntry(state=LedgerState.SENT), claim.revision)
        await eventually(
            lambda: mirror.get("odd id/1").state is LedgerState.SENT, what="settle in the mirror"
        )
        released = await ledger.claim(kv, "released")
        await eventually(lambda: mirror.get("released"), what="second claim in the mirror")
        await ledger.release(kv, "released", released.revision)
        await eventually(lambda: mirror.get("released") is None and len(mirror) == 2, what="delete")
        assert mirror.view(["before-start", "missing"]).keys() == {"before-start"}
    finally:
        await mirror.stop()


async def test_the_ledger_mirror_finds_a_series_occurrences_by_instant(
    js: JetStreamContext,
) -> None:
    from datetime import UTC, datetime

    from wasched.common.recurrence import occurrence_id

    kv, _ = await topology.declare(js)
    first, second = (datetime(2026, 12, 24, 9, s, tzinfo=UTC) for s in (0, 5))
    await ledger.cancel(kv, occurrence_id("bins", first))  # before the mirror starts
    await ledger.cancel(kv, occurrence_id("bins@x", first))  # another series, same prefix
    await ledger.cancel(kv, "bins")  # the series' own id is no occurrence
    mirror = LedgerMirror(js)
    await mirror.start()
    try:
        assert set(mirror.occurrences("bins")) == {first}
        claim = await ledger.claim(kv, occurrence_id("bins", second))
        await eventually(lambda: second in mirror.occurrences("bins"), what="a new occurrence")
        await ledger.release(kv, occurrence_id("bins", second), claim.revision)
        await eventually(lambda: second not in mirror.occurrences("bins"), what="released")
        assert set(mirror.occurrences("bins@x")) == {first}
        assert mirror.occurrences("nothing") == {}
    finally:
        await mirror.stop()


async def test_a_rehearsals_mirror_reads_only_the_rehearsal_ledger(js: JetStreamContext) -> None:
    """A dry run over a schedule it does not own decides on what it rehearsed, never on what
    the real run sent (nor the reverse)."""
    real, _ = await topology.declare(js)
    rehearsal, _ = await topology.declare(js, lane=topology.REHEARSAL)
    await ledger.cancel(real, "sent-for-real")
    await ledger.cancel(rehearsal, "rehearsed")
    mirror = LedgerMirror(js, bucket=topology.REHEARSAL.ledger_bucket)
    await mirror.start()
    try:
        assert mirror.view(["sent-for-real", "rehearsed"]).keys() == {"rehearsed"}
    finally:
        await mirror.stop()
