"""Reading neonize 0.5.2's events: protobuf messages in, our connection events and receipts out.

Pure translation, tested with real neonize event objects (tests/unit/
test_sender_whatsapp_events.py). Proto2 enums read 1 when unset, so every enum is read
through `enum_name`, which checks `HasField` first.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from wasched.sender.connection import (
    ClientOutdated,
    Connected,
    ConnectFailed,
    ConnEvent,
    Disconnected,
    KeepAliveRestored,
    LoggedOut,
    Paired,
    StreamReplaced,
    TemporaryBan,
)
from wasched.sender.transport import ReceiptKind, ReceiptSeen

log = logging.getLogger("wasched.sender.whatsapp")

HANDLED_EVENTS = (
    "ConnectedEv",
    "DisconnectedEv",
    "KeepAliveTimeoutEv",
    "KeepAliveRestoredEv",
    "LoggedOutEv",
    "TemporaryBanEv",
    "StreamReplacedEv",
    "ClientOutdatedEv",
    "ConnectFailureEv",
    "StreamErrorEv",
    "PairStatusEv",
    "ReceiptEv",
)
_LOGOUT_REASONS = {"LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"}
_RECEIPT_KINDS: dict[str, ReceiptKind] = {
    "DELIVERED": "delivered",
    "READ": "read",
    "PLAYED": "played",
}
DEFAULT_BAN_SECONDS = 3600


def load_neonize(bot_tag: str = "off") -> None:
    """Import neonize once, with `NEONIZE_BOT_TAG` set first (the Go core reads it when loaded).

    Its import runs `os.popen("uname -a")` and never closes the pipe: a
    ResourceWarning, and a `uname` zombie until the next subprocess starts. The
    import gets an `os.popen` that returns the same text with the pipe closed.
    """
    if "neonize.aioze.client" in sys.modules:
        return
    os.environ.setdefault("NEONIZE_BOT_TAG", bot_tag)
    original = os.popen

    def closing_popen(cmd: str, mode: str = "r", buffering: int = -1) -> io.StringIO:
        with original(cmd, mode, buffering) as stream:
            return io.StringIO(stream.read())

    os.popen = closing_popen  # type: ignore[assignment]
    try:
        import neonize.aioze.client  # noqa: F401
    finally:
        os.popen = original


def enum_name(event: Any, field: str) -> str | None:
    """The name of a proto2 enum field, or None when unset (unset reads as 1, not as absent)."""
    if not event.HasField(field):
        return None
    enum = event.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum.values_by_number.get(getattr(event, field))
    return value.name if value else None


def connection_event(event: Any) -> ConnEvent | None:
    """Translate a neonize event (a protobuf message) into our connection events."""
    match event.DESCRIPTOR.name:
        case "Connected":
            return Connected()
        case "Disconnected":
            return Disconnected()
        case "KeepAliveTimeout":
            return Disconnected("keep-alive timeout")
        case "StreamError":
            return Disconnected(f"stream error {event.Code or ''}".strip())
        case "KeepAliveRestored":
            return KeepAliveRestored()
        case "LoggedOut":
            return LoggedOut(_reason(enum_name(event, "Reason")))
        case "TemporaryBan":
            seconds = event.Expire if event.HasField("Expire") and event.Expire > 0 else None
            return TemporaryBan(_reason(enum_name(event, "Code")), seconds or DEFAULT_BAN_SECONDS)
        case "StreamReplaced":
            return StreamReplaced()
        case "ClientOutdated":
            return ClientOutdated()
        case "ConnectFailure":
            return _connect_failure(event)
        case "PairStatus":
            ok = enum_name(event, "Status") == "SUCCESS"
            return Paired(ok=ok, error=None if ok else (event.Error or "pairing failed"))
    return None


def receipt_seen(event: Any, now: datetime) -> ReceiptSeen | None:
    """A delivered/read/played receipt, or None for kinds we do not report."""
    kind = _RECEIPT_KINDS.get(enum_name(event, "Type") or "")
    if kind is None or not event.MessageIDs:
        return None
    at = datetime.fromtimestamp(event.Timestamp, UTC) if event.Timestamp > 0 else now
    return ReceiptSeen(wa_message_ids=tuple(event.MessageIDs), kind=kind, at=at)


def _reason(name: str | None) -> str:
    return (name or "unknown").lower().replace("_", " ")


def _connect_failure(event: Any) -> ConnEvent:
    reason = enum_name(event, "Reason")
    if reason in _LOGOUT_REASONS:
        return LoggedOut(_reason(reason))
    text = f"{_reason(reason)}: {event.Message}" if event.Message else _reason(reason)
    return ConnectFailed(f"WhatsApp refused the connection ({text})")
