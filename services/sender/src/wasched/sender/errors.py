"""What a WhatsApp client error means for the message: classified by what reached the socket.

whatsmeow (under neonize) reports errors as text only, and neonize passes `err.Error()`
through unchanged. `TABLE` maps whatsmeow's own texts, at the version neonize 0.5.2 bundles
(`WHATSMEOW_VERSION`), to what they prove:

- NOT_SENT: the message node was never written (whatsmeow wraps a failed first write as
  "failed to send message node: …"), or the error came before it existed (device list,
  LID and group lookups, the local store). The claim may be released and the send retried.
- AMBIGUOUS: the node was written, or may have been: no answer in time, or whatsmeow's own
  retry after a disconnect failed ("websocket not connected" from `retryFrame`, "frame socket
  is closed"). It may have been delivered: `interrupted`, never retried. Anything the table
  does not know is ambiguous too.
- REFUSED: WhatsApp answered with an error code, or the client rejected the recipient before
  sending: `failed` / `whatsapp_error`, nothing was delivered.

The first matching row wins; rows match at the start of the text. `tests/unit/
test_sender_errors.py` checks each row's example and that its cited literal is in the
bundled library, so a neonize upgrade that changes a text is caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

WHATSMEOW_VERSION = "v0.0.0-20260921121126-35ae40906e74"
"""go.mau.fi/whatsmeow as bundled in neonize 0.5.2's `neonize-linux-amd64.so` (go build info)."""


class SendErrorKind(StrEnum):
    NOT_SENT = "not_sent"
    """Nothing reached WhatsApp: release the claim, retry later."""
    AMBIGUOUS = "ambiguous"
    """It may have been delivered: report `interrupted`, never retry."""
    REFUSED = "refused"
    """WhatsApp or the client rejected it: report `failed` with the error text."""


@dataclass(frozen=True, slots=True)
class Row:
    pattern: str
    kind: SendErrorKind
    example: str
    """A text as whatsmeow renders it (the test classifies it)."""
    evidence: str
    """The literal in whatsmeow's source that produces it ("" for our own texts)."""
    source: str


NOT_SENT, AMBIGUOUS, REFUSED = (
    SendErrorKind.NOT_SENT,
    SendErrorKind.AMBIGUOUS,
    SendErrorKind.REFUSED,
)

TABLE: tuple[Row, ...] = (
    Row(
        r"failed to send message node: ",
        NOT_SENT,
        "failed to send message node: websocket not connected",
        "failed to send message node: %w",
        "send.go sendDM/sendGroup/sendNewsletter: sendNodeAndGetData failed, nothing written",
    ),
    Row(
        r"failed to get device list: ",
        NOT_SENT,
        "failed to get device list: failed to send usync query: info query timed out",
        "failed to get device list: %w",
        "send.go prepareMessageNode: the usync device query before the node is built",
    ),
    Row(
        r"failed to get user info for .* to fill LID cache: ",
        NOT_SENT,
        "failed to get user info for 447957189696@s.whatsapp.net to fill LID cache: "
        "info query timed out",
        "failed to get user info for %s to fill LID cache: %w",
        "send.go SendMessage: the LID lookup before the node is built",
    ),
    Row(
        r"failed to get LID for PN ",
        NOT_SENT,
        "failed to get LID for PN 447957189696@s.whatsapp.net: database is locked",
        "failed to get LID for PN %s: %w",
        "send.go SendMessage: the local LID store",
    ),
    Row(
        r"failed to get group members: ",
        NOT_SENT,
        "failed to get group members: info query timed out",
        "failed to get group members: %w",
        "send.go SendMessage: the group info query before the node is built",
    ),
    Row(
        r"failed to fetch LID mappings: ",
        NOT_SENT,
        "failed to fetch LID mappings: database is locked",
        "failed to fetch LID mappings: %w",
        "send.go encryptMessageForDevices: the local store, before sending",
    ),
    Row(
        r"failed to prefetch sessions: ",
        NOT_SENT,
        "failed to prefetch sessions: database is locked",
        "failed to prefetch sessions: %w",
        "send.go encryptMessageForDevices: the local store, before sending",
    ),
    Row(
        r"failed to save cached sessions: ",
        NOT_SENT,
        "failed to save cached sessions: database is locked",
        "failed to save cached sessions: %w",
        "send.go encryptMessageForDevices: the local store, before sending",
    ),
    Row(
        r"the store doesn't contain a device JID$",
        NOT_SENT,
        "the store doesn't contain a device JID",
        "the store doesn't contain a device JID",
        "errors.go ErrNotLoggedIn: SendMessage returns it before anything else",
    ),
    Row(
        r"client is nil$",
        NOT_SENT,
        "client is nil",
        "client is nil",
        "errors.go ErrClientIsNil: SendMessage on no client",
    ),
    Row(
        r"websocket disconnected before info query returned response$",
        NOT_SENT,
        "websocket disconnected before info query returned response",
        "websocket disconnected before %s returned response",
        "errors.go DisconnectedError{info query}: an info query; the message node is not one",
    ),
    Row(
        r"info query timed out$",
        NOT_SENT,
        "info query timed out",
        "info query timed out",
        "errors.go ErrIQTimedOut: an info query; the message node is not one",
    ),
    Row(
        r"WhatsApp client not connected$",
        NOT_SENT,
        "WhatsApp client not connected",
        "",
        "wasched whatsapp.py: no live client, nothing was called",
    ),
    Row(
        r"server returned error \d+",
        REFUSED,
        "server returned error 463",
        "server returned error",
        "send.go SendMessage: WhatsApp's ack carries an error code; the message was refused",
    ),
    Row(
        r"can't send message to unknown server",
        REFUSED,
        "can't send message to unknown server example.com",
        "can't send message to unknown server",
        "errors.go ErrUnknownServer: rejected before sending",
    ),
    Row(
        r"message recipient must be a user JID with no device part",
        REFUSED,
        "message recipient must be a user JID with no device part",
        "message recipient must be a user JID with no device part",
        "errors.go ErrRecipientADJID: rejected before sending",
    ),
    Row(
        r"no LID found for .* from server",
        REFUSED,
        "no LID found for 447957189696@s.whatsapp.net from server",
        "no LID found for %s from server",
        "send.go SendMessage: WhatsApp knows no LID for the recipient; retrying cannot help",
    ),
    Row(
        r"failed to marshal message",
        REFUSED,
        "failed to marshal message: proto: invalid UTF-8",
        "failed to marshal message: %w",
        "send.go marshalMessage: the message cannot be encoded; retrying cannot help",
    ),
    Row(
        r"timed out waiting for message send response",
        AMBIGUOUS,
        "timed out waiting for message send response",
        "timed out waiting for message send response",
        "errors.go ErrMessageTimedOut: the node was written, no ack within 75 s",
    ),
    Row(
        r"websocket disconnected before message send",
        AMBIGUOUS,
        "websocket disconnected before message send (retry) returned response",
        "%s (retry)",
        "request.go retryFrame: the node was written, the connection dropped, the retry failed",
    ),
    Row(
        r"websocket not connected$",
        AMBIGUOUS,
        "websocket not connected",
        "websocket not connected",
        "request.go retryFrame: ErrNotConnected after the node was written",
    ),
    Row(
        r"frame socket is closed$",
        AMBIGUOUS,
        "frame socket is closed",
        "frame socket is closed",
        "socket/framesocket.go SendFrame (from retryFrame): after the node was written",
    ),
    Row(
        r"failed to write (msg|frame)",
        AMBIGUOUS,
        "failed to write msg: failed to write frame: broken pipe",
        "failed to write frame: %w",
        "coder/websocket Write (from retryFrame): after the node was written",
    ),
    Row(
        r"context (deadline exceeded|canceled)",
        AMBIGUOUS,
        "context deadline exceeded",
        "context deadline exceeded",
        "Go context: gave up waiting, after the node may have been written",
    ),
)

_COMPILED = tuple((re.compile(row.pattern), row.kind) for row in TABLE)

SERVER_ERRORS = {
    463: "reach-out timelock: WhatsApp temporarily blocks this account from starting new chats",
}
"""Ack error codes whose meaning is known (tulir/whatsmeow#1197, WhiskeySockets/Baileys#2441)."""
_SERVER_CODE = re.compile(r"server returned error (\d+)")


def classify(error: str) -> SendErrorKind:
    text = error.strip()
    for pattern, kind in _COMPILED:
        if pattern.match(text):
            return kind
    return SendErrorKind.AMBIGUOUS


def explain(error: str) -> str:
    """The client's text, with what a known WhatsApp error code means."""
    match = _SERVER_CODE.search(error)
    if match and int(match[1]) in SERVER_ERRORS:
        return f"{error} ({SERVER_ERRORS[int(match[1])]})"
    return error
