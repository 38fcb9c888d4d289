"""The ledger's `superseded` gate and versioned claims, against a real nats-server.

The poller gates an id it handed over when the message changes; a sender holding
the old version must then lose its claim, and the new version must win it.
"""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from wasched.common import ledger, topology
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind


async def test_a_gate_lets_only_its_version_be_claimed(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    gate = await ledger.supersede(kv, "m", "v2")
    assert gate.state is LedgerState.SUPERSEDED and gate.version == "v2"
    old = await ledger.claim(kv, "m", version="v1", holder="s1")
    unversioned = await ledger.claim(kv, "m", holder="s1")
    assert not old.won and not unversioned.won
    assert old.entry.state is LedgerState.SUPERSEDED
    new = await ledger.claim(kv, "m", version="v2", holder="s1")
    assert new.won
    stored = await ledger.read(kv, "m")
    assert stored is not None
    assert stored[0].state is LedgerState.CLAIMED
    assert (stored[0].version, stored[0].holder) == ("v2", "s1")


async def test_a_withdrawn_id_cannot_be_claimed_until_the_gate_moves(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.supersede(kv, "m", None)
    assert not (await ledger.claim(kv, "m", version="v1")).won
    moved = await ledger.supersede(kv, "m", "v1")
    assert moved.allows("v1")
    assert (await ledger.claim(kv, "m", version="v1")).won


async def test_exactly_one_concurrent_claim_of_a_gated_version_wins(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.supersede(kv, "m", "v3")
    claims = await asyncio.gather(*(ledger.claim(kv, "m", version="v3") for _ in range(20)))
    assert sum(c.won for c in claims) == 1


async def test_a_claim_or_outcome_is_never_superseded(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    won = await ledger.claim(kv, "busy", version="v1")
    assert (await ledger.supersede(kv, "busy", "v2")).state is LedgerState.CLAIMED
    sent = LedgerEntry(state=LedgerState.SENT, version="v1")
    await ledger.settle(kv, "busy", sent, won.revision)
    for reopen in (False, True):
        after = await ledger.supersede(kv, "busy", "v2", reopen=reopen)
        assert after.state is LedgerState.SENT


async def test_a_rejection_reopens_for_a_corrected_version_only(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    rejected = LedgerEntry(
        state=LedgerState.FAILED, error_kind=ErrorKind.INVALID_RECIPIENT, version="v1"
    )
    await ledger.record_final(kv, "r", rejected)
    assert (await ledger.supersede(kv, "r", "v2")).state is LedgerState.FAILED  # no reopen
    assert (await ledger.supersede(kv, "r", "v1", reopen=True)).state is LedgerState.FAILED
    reopened = await ledger.supersede(kv, "r", "v2", reopen=True)
    assert reopened.allows("v2")
    assert (await ledger.claim(kv, "r", version="v2")).won


async def test_an_interrupted_or_refused_send_is_never_reopened(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    for ident, kind in (("i", ErrorKind.INTERRUPTED), ("w", ErrorKind.WHATSAPP_ERROR)):
        entry = LedgerEntry(state=LedgerState.FAILED, error_kind=kind, version="v1")
        await ledger.record_final(kv, ident, entry)
        assert (await ledger.supersede(kv, ident, "v2", reopen=True)).state is LedgerState.FAILED


async def test_a_verdict_replaces_only_the_gate_of_its_version(js: JetStreamContext) -> None:
    kv, _ = await topology.declare(js)
    await ledger.supersede(kv, "g", "v2")
    stale = LedgerEntry(state=LedgerState.EXPIRED, version="v1")
    assert (await ledger.record_final(kv, "g", stale)).state is LedgerState.SUPERSEDED
    current = LedgerEntry(state=LedgerState.EXPIRED, version="v2")
    assert (await ledger.record_final(kv, "g", current)) is current
    await ledger.supersede(kv, "c", "v9")
    assert (await ledger.cancel(kv, "c")).state is LedgerState.CANCELLED
