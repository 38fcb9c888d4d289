"""The WhatsApp transport: what the sender needs from a WhatsApp client, and nothing more.

Two implementations, one per file: `dryrun.DryrunTransport` (writes an outbox
file, for tests and demos) and `whatsapp.NeonizeTransport` (the real client).
Transports report connection changes and receipts to a `TransportListener`;
they never decide what to do about them (see `connection.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from wasched.common.recipients import Recipient
from wasched.sender.connection import ConnEvent

ReceiptKind = Literal["delivered", "read", "played"]


@dataclass(frozen=True, slots=True)
class Sent:
    """WhatsApp accepted the message."""

    wa_message_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptSeen:
    wa_message_ids: tuple[str, ...]
    kind: ReceiptKind
    at: datetime


class TransportError(Exception):
    """The client's own error text (classified by `errors.classify`)."""


class PairingError(Exception):
    """A pair code cannot be given; the text says why."""


class TransportListener(Protocol):
    def connection_event(self, event: ConnEvent) -> None: ...

    def receipt(self, seen: ReceiptSeen) -> None: ...


class Transport(Protocol):
    name: str

    async def start(self, listener: TransportListener) -> None:
        """Begin connecting; report progress as connection events."""

    async def restart(self) -> None:
        """Stop the client and start a fresh one (after logout, ban expiry, failed connect)."""

    async def stop_client(self) -> None:
        """Stop talking to WhatsApp but keep the process up (banned, replaced, outdated)."""

    async def stop(self, timeout: float) -> None:
        """Shut down for good, within `timeout` seconds."""

    async def lookup(self, recipient: Recipient) -> Recipient | None:
        """The recipient as WhatsApp knows it (its JID may differ from the number as written),
        or None when the number is not on WhatsApp; raises `TransportError`."""

    async def typing(self, recipient: Recipient, seconds: float) -> None:
        """Show "typing…" for `seconds` (cosmetic; may raise `TransportError`)."""

    async def send(self, message_id: str, recipient: Recipient, text: str) -> Sent:
        """Hand one text to WhatsApp; raises `TransportError` with the client's text."""

    async def pair_code(self, phone: str) -> str:
        """An 8-character code to link this device by phone number; raises `PairingError`."""
