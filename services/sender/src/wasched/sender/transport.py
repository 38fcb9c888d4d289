"""The WhatsApp transport: what the sender needs from a WhatsApp client, and nothing more.

Two implementations, one per file: `dryrun.DryrunTransport` (writes an outbox
file, for tests and demos) and `whatsapp.NeonizeTransport` (the real client).
Transports report connection changes and receipts to a `TransportListener`;
they never decide what to do about them (see `connection.py`).

A message goes in two steps. `build` turns the content (a text, or a media file the
sender fetched before the claim) into what the client hands over; for media that
uploads the file to WhatsApp's media servers, which delivers nothing to anyone, so a
failure there is an honest `failed`. `send` hands it to WhatsApp: from then on it may
have arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from wasched.common.media import MediaKind
from wasched.common.messages import ErrorKind
from wasched.common.recipients import Recipient
from wasched.sender.connection import ConnEvent
from wasched.sender.media import FetchedMedia

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


@dataclass(frozen=True, slots=True)
class LinkPreview:
    """A link's preview, made by the sender before the claim (`preview.py`)."""

    url: str
    title: str
    description: str = ""
    thumbnail: bytes | None = None
    """A small JPEG of the page's picture, if it has one."""
    thumbnail_size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class TextContent:
    text: str
    link_preview: bool = False
    """Asked for a preview of the first link."""
    preview: LinkPreview | None = None
    """The preview, when one could be made (else the text goes without one)."""
    preview_error: str | None = None


@dataclass(frozen=True, slots=True)
class MediaContent:
    kind: MediaKind
    file: FetchedMedia
    caption: str | None = None


Content = TextContent | MediaContent


@dataclass(frozen=True, slots=True)
class Built:
    """What a transport made of a content, ready to hand over (`message`: its own form)."""

    content: Content
    message: Any = None


class BuildError(Exception):
    """The message could not be prepared; nothing reached the recipient."""

    def __init__(self, kind: ErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


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

    async def build(self, content: Content) -> Built:
        """Prepare the message (a media file is uploaded to WhatsApp's media servers and
        measured with ffprobe/ffmpeg): nothing reaches the recipient; raises `BuildError`."""

    async def send(self, message_id: str, recipient: Recipient, built: Built) -> Sent:
        """Hand one message to WhatsApp; raises `TransportError` with the client's text."""

    async def pair_code(self, phone: str) -> str:
        """An 8-character code to link this device by phone number; raises `PairingError`."""
