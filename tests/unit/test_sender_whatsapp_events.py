"""neonize events (real protobuf messages from `neonize.proto`) → our connection events and receipts."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import pytest

from wasched.sender.connection import (
    ClientOutdated,
    Connected,
    ConnectFailed,
    Disconnected,
    KeepAliveRestored,
    LoggedOut,
    Paired,
    StreamReplaced,
    TemporaryBan,
)
from wasched.sender.neonize_events import (
    DEFAULT_BAN_SECONDS,
    connection_event,
    load_neonize,
    receipt_seen,
)

load_neonize()  # first: neonize's own import leaks a pipe, this import closes it
pb: Any = importlib.import_module("neonize.proto.Neonize_pb2")

NOW = datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
Reason = pb.ConnectFailureReason


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (pb.Connected(status=True), Connected()),
        (pb.Disconnected(status=True), Disconnected()),
        (pb.KeepAliveTimeout(ErrorCount=3), Disconnected("keep-alive timeout")),
        (pb.KeepAliveRestored(), KeepAliveRestored()),
        (pb.StreamError(Code="503"), Disconnected("stream error 503")),
        (pb.LoggedOut(OnConnect=True, Reason=Reason.Value("LOGGED_OUT")), LoggedOut("logged out")),
        (
            pb.LoggedOut(Reason=Reason.Value("MAIN_DEVICE_GONE")),
            LoggedOut("main device gone"),
        ),
        (pb.LoggedOut(), LoggedOut("unknown")),
        (
            pb.TemporaryBan(Code=pb.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600),
            TemporaryBan("sent too many same message", 3600),
        ),
        (pb.TemporaryBan(), TemporaryBan("unknown", DEFAULT_BAN_SECONDS)),
        (pb.StreamReplaced(), StreamReplaced()),
        (pb.ClientOutdated(), ClientOutdated()),
        (
            pb.ConnectFailure(Reason=Reason.Value("UNKNOWN_LOGOUT")),
            LoggedOut("unknown logout"),
        ),
        (
            pb.ConnectFailure(Reason=Reason.Value("SERVICE_UNAVAILABLE"), Message="try later"),
            ConnectFailed("WhatsApp refused the connection (service unavailable: try later)"),
        ),
        (pb.PairStatus(Status=pb.PairStatus.SUCCESS), Paired(ok=True)),
        (
            pb.PairStatus(Status=pb.PairStatus.ERROR, Error="bad code"),
            Paired(ok=False, error="bad code"),
        ),
        (pb.Presence(), None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_connection_events(event: object, expected: object) -> None:
    assert connection_event(event) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (pb.Receipt.DELIVERED, "delivered"),
        (pb.Receipt.READ, "read"),
        (pb.Receipt.PLAYED, "played"),
        (pb.Receipt.SENDER, None),
        (pb.Receipt.READ_SELF, None),
        (pb.Receipt.RETRY, None),
    ],
)
def test_receipt_kinds(kind: int, expected: str | None) -> None:
    event = pb.Receipt(MessageIDs=["3EB0A1", "3EB0A2"], Timestamp=1766570400, Type=kind)
    seen = receipt_seen(event, NOW)
    if expected is None:
        assert seen is None
    else:
        assert seen is not None
        assert (seen.kind, seen.wa_message_ids) == (expected, ("3EB0A1", "3EB0A2"))
        assert seen.at == datetime(2025, 12, 24, 10, 0, tzinfo=UTC)


def test_a_receipt_without_type_is_not_taken_for_delivered() -> None:
    event = pb.Receipt(MessageIDs=["3EB0A1"], Timestamp=1766570400)
    assert event.Type == pb.Receipt.DELIVERED, "proto2 reads an unset enum as its first value"
    assert receipt_seen(event, NOW) is None
