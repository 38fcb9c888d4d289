"""Stream, KV and dedup against a real nats-server."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from tests.support.waiting import eventually
from wasched.common import ledger, topology
from wasched.common.ledger import LedgerEntry, LedgerState


async def test_declaring_twice_is_harmless(js: JetStreamContext) -> None:
    await topology.declare(js)
    await topology.declare(js)
    info = await js.stream_info(topology.STREAM)
    assert info.config.allow_msg_schedules
    assert info.config.duplicate_window >= 600
    assert set(topology.STREAM_SUBJECTS) == set(info.config.subjects or [])
    assert (await js.key_value(topology.LEDGER_BUCKET)).__class__.__name__ == "KeyValue"


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
    mirror = ledger.LedgerMirror(kv)
    await mirror.start()
    try:
        assert mirror.get("before-start").state is LedgerState.CANCELLED
        claim = await ledger.claim(kv, "odd id/1")
        await eventually(lambda: mirror.get("odd id/1"), what="claim in the mirror")
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
