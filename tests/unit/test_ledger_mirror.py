"""What the poller's ledger mirror keeps of an entry: a final one compact, but every field a
poll decides on; an entry still in play whole; anything else nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind
from wasched.common.mirror import compact

AT = datetime(2026, 12, 24, 10, 0, tzinfo=UTC)
SENT = LedgerEntry(
    state=LedgerState.SENT,
    at=AT,
    sent_at=AT,
    wa_message_id="3EB0C767D26A1D0F",
    jid="447957189696@s.whatsapp.net",
    version="0123456789abcdef",
    delivered_at=AT,
)
REJECTED = LedgerEntry(
    state=LedgerState.FAILED,
    at=AT,
    error="not a phone number: …9696",
    error_kind=ErrorKind.INVALID_RECIPIENT,
    version="0123456789abcdef",
)


@pytest.mark.parametrize("entry", [SENT, REJECTED, LedgerEntry(state=LedgerState.CANCELLED)])
def test_a_final_entry_keeps_what_a_poll_decides_on(entry: LedgerEntry) -> None:
    kept = compact(entry.to_json())
    assert kept is not None and len(kept) <= len(entry.to_json())
    got = LedgerEntry.model_validate_json(kept)
    decided_on = ("state", "at", "version", "error_kind", "delivered_at", "read_at")
    assert [getattr(got, f) for f in decided_on] == [getattr(entry, f) for f in decided_on]
    assert (got.is_final, got.reopenable) == (entry.is_final, entry.reopenable)
    assert got.wa_message_id is None and got.jid is None and got.error is None


@pytest.mark.parametrize(
    "entry",
    [
        LedgerEntry(state=LedgerState.CLAIMED, at=AT, jid="x@s.whatsapp.net", holder="s1"),
        LedgerEntry(state=LedgerState.SUPERSEDED, at=AT, version="0123456789abcdef"),
    ],
)
def test_an_entry_in_play_is_kept_whole(entry: LedgerEntry) -> None:
    assert compact(entry.to_json()) == entry.to_json()


@pytest.mark.parametrize("value", [b"not json", b"[1]", b'{"state": "maybe"}', b'{"at": 1}'])
def test_anything_else_is_not_kept(value: bytes) -> None:
    assert compact(value) is None
