"""What a WhatsApp client error means for the message: retry, unknown, or refused.

whatsmeow (under neonize) reports errors as text only. The class decides the
outcome: only errors raised before anything reached WhatsApp may be retried;
a timeout or a connection lost mid-send may or may not have delivered it, so
it becomes `interrupted` and is never retried.
"""

from __future__ import annotations

from enum import StrEnum


class SendErrorKind(StrEnum):
    NOT_SENT = "not_sent"
    """Nothing left this process (not connected / not logged in): safe to retry later."""
    AMBIGUOUS = "ambiguous"
    """It may have been delivered: report `interrupted`, never retry."""
    REFUSED = "refused"
    """WhatsApp or the client rejected it: report `failed` with the error text."""


_NOT_SENT = (
    "websocket not connected",
    "not connected",
    "not logged in",
    "doesn't contain a device jid",
    "no session",
)
_AMBIGUOUS = (
    "timed out",
    "timeout",
    "deadline exceeded",
    "context canceled",
    "disconnected before",
    "connection reset",
    "broken pipe",
    "eof",
    "failed to send message node",
    "websocket disconnected",
)


def classify(error: str) -> SendErrorKind:
    """Not-sent markers win: "…: websocket not connected" means the frame was never written."""
    text = error.lower()
    if any(marker in text for marker in _NOT_SENT):
        return SendErrorKind.NOT_SENT
    if any(marker in text for marker in _AMBIGUOUS):
        return SendErrorKind.AMBIGUOUS
    return SendErrorKind.REFUSED
