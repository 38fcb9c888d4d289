"""Withdrawing a claim or a cancellation is compare-and-set: a stale revision answers False.

nats-py raises `BadRequestError` (code 10071) for `kv.delete(last=)` on a wrong revision,
not `KeyWrongLastSequenceError` as `update` does; the ledger must treat both alike, against
a real nats-server.
"""

from __future__ import annotations

from nats.js import JetStreamContext

from wasched.common import ledger, topology
from wasched.common.ledger import LedgerEntry, LedgerState


async def test_release_with_a_stale_revision_keeps_the_entry(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    claim = await ledger.claim(kv, "m1", "447957189696@s.whatsapp.net", version="v1", holder="a")
    sent = LedgerEntry(state=LedgerState.SENT, version="v1")
    await ledger.settle(kv, "m1", sent, claim.revision)
    assert await ledger.release(kv, "m1", claim.revision) is False
    stored = await ledger.read(kv, "m1")
    assert stored is not None and stored[0].state is LedgerState.SENT


async def test_release_with_the_current_revision_withdraws_the_claim(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    claim = await ledger.claim(kv, "m2", version="v1", holder="a")
    assert await ledger.release(kv, "m2", claim.revision) is True
    assert await ledger.read(kv, "m2") is None
    assert (await ledger.claim(kv, "m2", version="v1", holder="b")).won


async def test_uncancel_that_loses_a_race_answers_false(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.cancel(kv, "m3")
    stored = await ledger.read(kv, "m3")
    assert stored is not None
    # someone changes the entry between uncancel's read and its delete
    await kv.update(topology.ledger_key("m3"), stored[0].to_json(), last=stored[1])
    original_read = ledger.read

    async def stale_read(kv_: object, message_id: str) -> tuple[LedgerEntry, int] | None:
        current = await original_read(kv, message_id)
        assert current is not None
        return current[0], stored[1]  # the revision uncancel saw before the change

    ledger.read = stale_read  # type: ignore[assignment]
    try:
        assert await ledger.uncancel(kv, "m3") is False
    finally:
        ledger.read = original_read  # type: ignore[assignment]
    after = await ledger.read(kv, "m3")
    assert after is not None and after[0].state is LedgerState.CANCELLED
