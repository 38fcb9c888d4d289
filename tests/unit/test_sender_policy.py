"""Pure decisions of the send path: ledger entries, lateness, replies, pairing, error classes."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest

from wasched.common.events import Outcome
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.sender.errors import SendErrorKind, classify
from wasched.sender.policy import (
    Existing,
    existing_verdict,
    expiry_reason,
    lateness_seconds,
    pairing_refusal,
    reply_for,
)
from wasched.sender.whatsapp import load_neonize

load_neonize()  # first: neonize's own import leaks a pipe, this import closes it
neonize_exc = importlib.import_module("neonize.exc")
SendMessageError = neonize_exc.SendMessageError
IsOnWhatsAppError = neonize_exc.IsOnWhatsAppError

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
DAY = 86400


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        (LedgerState.CLAIMED, Existing.INTERRUPTED),
        (LedgerState.SENT, Existing.REPUBLISH),
        (LedgerState.FAILED, Existing.REPUBLISH),
        (LedgerState.EXPIRED, Existing.REPUBLISH),
        (LedgerState.CANCELLED, Existing.REPUBLISH),
    ],
)
def test_an_existing_entry_is_never_sent_again(state: LedgerState, verdict: Existing) -> None:
    assert existing_verdict(LedgerEntry(state=state)) is verdict


def test_a_bare_claim_reads_as_interrupted() -> None:
    outcome = LedgerEntry(state=LedgerState.CLAIMED).outcome("m1")
    assert (outcome.status, outcome.error_kind) == (Status.FAILED, ErrorKind.INTERRUPTED)
    assert "may or may not have been delivered" in (outcome.error or "")


@pytest.mark.parametrize(
    ("late", "expires_in", "max_lateness", "expired", "says"),
    [
        pytest.param(5, None, DAY, False, None, id="on time"),
        pytest.param(DAY - 1, None, DAY, False, None, id="late but within the limit"),
        pytest.param(DAY + 1, None, DAY, True, "MAX_LATENESS_SECONDS=86400", id="too late"),
        pytest.param(10 * DAY, None, 0, False, None, id="0 = send however late"),
        pytest.param(5, -1, DAY, True, "expiresAt", id="past expiresAt"),
        pytest.param(5, 60, DAY, False, None, id="before expiresAt"),
        pytest.param(-60, None, DAY, False, None, id="early is not late"),
    ],
)
def test_expiry(
    late: float, expires_in: float | None, max_lateness: float, expired: bool, says: str | None
) -> None:
    scheduled = NOW - timedelta(seconds=late)
    expires = NOW + timedelta(seconds=expires_in) if expires_in is not None else None
    reason = expiry_reason(scheduled, expires, NOW, max_lateness)
    assert (reason is not None) is expired
    if says:
        assert says in (reason or "")


def test_lateness_is_never_negative() -> None:
    assert lateness_seconds(NOW, NOW + timedelta(seconds=1.2345)) == 1.234
    assert lateness_seconds(NOW, NOW - timedelta(seconds=3)) == 0.0


@pytest.mark.parametrize(
    ("status", "error", "ok"),
    [
        (Status.SENT, None, True),
        (Status.FAILED, "not on WhatsApp", False),
        (Status.CANCELLED, None, False),
    ],
)
def test_reply_for_outcome(status: Status, error: str | None, ok: bool) -> None:
    answer = reply_for(Outcome(id="m1", status=status, error=error))
    assert (answer.ok, answer.id) == (ok, "m1")
    if not ok:
        assert answer.error == (error or f"message {status}")


@pytest.mark.parametrize(
    ("state", "transport", "refused_with"),
    [
        ("pairing", "neonize", None),
        ("connected", "dryrun", "dryrun transport does not pair"),
        ("connected", "neonize", "already linked"),
        ("banned", "neonize", "it is banned (until tomorrow)"),
        ("connecting", "neonize", "cannot pair now"),
    ],
)
def test_pairing_refusal(state: str, transport: str, refused_with: str | None) -> None:
    detail = "until tomorrow" if state == "banned" else None
    got = pairing_refusal(state, transport, detail)  # type: ignore[arg-type]
    if refused_with is None:
        assert got is None
    else:
        assert got is not None and refused_with in got


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(
            SendMessageError("failed to get device list: websocket not connected"),
            SendErrorKind.NOT_SENT,
            id="not connected",
        ),
        pytest.param(
            SendMessageError("the store doesn't contain a device JID"),
            SendErrorKind.NOT_SENT,
            id="not logged in",
        ),
        pytest.param(
            SendMessageError("failed to send message node: websocket not connected"),
            SendErrorKind.NOT_SENT,
            id="frame never written",
        ),
        pytest.param(
            SendMessageError("timed out waiting for message send response"),
            SendErrorKind.AMBIGUOUS,
            id="timeout",
        ),
        pytest.param(
            SendMessageError("context deadline exceeded"), SendErrorKind.AMBIGUOUS, id="deadline"
        ),
        pytest.param(
            SendMessageError("websocket disconnected before info query returned response"),
            SendErrorKind.AMBIGUOUS,
            id="dropped mid-send",
        ),
        pytest.param(
            SendMessageError("server returned error 479"), SendErrorKind.REFUSED, id="refused"
        ),
        pytest.param(
            IsOnWhatsAppError("info query timed out"), SendErrorKind.AMBIGUOUS, id="lookup"
        ),
    ],
)
def test_classify_real_neonize_errors(error: Exception, kind: SendErrorKind) -> None:
    assert classify(str(error)) is kind
