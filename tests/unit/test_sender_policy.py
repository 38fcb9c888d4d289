"""Pure decisions of the send path: ledger entries, lateness, replies, pairing, error classes
(with real neonize error objects; the full table is in test_sender_errors.py)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest

from wasched.common.events import Outcome
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.sender.errors import SendErrorKind, classify
from wasched.sender.neonize_events import load_neonize
from wasched.sender.policy import (
    Holder,
    Standing,
    expiry_reason,
    lateness_seconds,
    pairing_refusal,
    reply_for,
    standing,
)

load_neonize()  # first: neonize's own import leaks a pipe, this import closes it
neonize_exc = importlib.import_module("neonize.exc")
SendMessageError = neonize_exc.SendMessageError
IsOnWhatsAppError = neonize_exc.IsOnWhatsAppError

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
DAY = 86400


CLAIMED, SUPERSEDED = LedgerState.CLAIMED, LedgerState.SUPERSEDED


@pytest.mark.parametrize(
    ("entry", "version", "holder", "expected"),
    [
        pytest.param(None, "v1", None, Standing.FREE, id="nothing yet: claim it"),
        pytest.param((SUPERSEDED, "v2"), "v2", None, Standing.FREE, id="gate allows this version"),
        pytest.param((SUPERSEDED, "v2"), "v1", None, Standing.OUT_OF_DATE, id="gate for another"),
        pytest.param((SUPERSEDED, None), "v1", None, Standing.OUT_OF_DATE, id="withdrawn"),
        pytest.param((SUPERSEDED, "v2"), None, None, Standing.OUT_OF_DATE, id="unversioned event"),
        pytest.param((CLAIMED, "v1"), "v1", Holder.ALIVE, Standing.HELD, id="live holder: wait"),
        pytest.param(
            (CLAIMED, "v1"), "v1", Holder.SUSPECT, Standing.HELD, id="holder unsure: wait"
        ),
        pytest.param((CLAIMED, "v1"), "v1", Holder.GONE, Standing.ORPHANED, id="holder gone"),
        pytest.param((CLAIMED, "v1"), "v1", Holder.ME, Standing.ORPHANED, id="our old claim"),
        pytest.param((LedgerState.SENT, "v1"), "v2", None, Standing.FINAL, id="sent stays sent"),
        pytest.param((LedgerState.FAILED, "v1"), "v1", None, Standing.FINAL, id="failed"),
        pytest.param((LedgerState.EXPIRED, "v1"), "v1", None, Standing.FINAL, id="expired"),
        pytest.param((LedgerState.CANCELLED, None), "v1", None, Standing.FINAL, id="cancelled"),
    ],
)
def test_what_an_existing_entry_means(
    entry: tuple[LedgerState, str | None] | None,
    version: str | None,
    holder: Holder | None,
    expected: Standing,
) -> None:
    ledger_entry = LedgerEntry(state=entry[0], version=entry[1]) if entry else None
    assert standing(ledger_entry, version, holder) is expected


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
            SendErrorKind.NOT_SENT,
            id="dropped before the send (an info query)",
        ),
        pytest.param(
            SendMessageError("websocket disconnected before message send returned response"),
            SendErrorKind.AMBIGUOUS,
            id="dropped mid-send",
        ),
        pytest.param(
            SendMessageError("server returned error 479"), SendErrorKind.REFUSED, id="refused"
        ),
        pytest.param(
            IsOnWhatsAppError("info query timed out"), SendErrorKind.NOT_SENT, id="lookup"
        ),
    ],
)
def test_classify_real_neonize_errors(error: Exception, kind: SendErrorKind) -> None:
    assert classify(str(error)) is kind
