"""The dryrun transport: every would-be send becomes one JSON line in `DRYRUN_OUTBOX`.

Each line is `{"id", "jid", "message", "at", "waMessageId"}`, flushed and fsynced
before the send returns, so a SIGKILL right after cannot lose it. A media message adds
`"media": {"type", "size", "sha256", "mime", "fileName"}` (the file was fetched and
checked exactly as for WhatsApp; `message` is its caption), a text asked with a link
preview adds `"linkPreview"`: the preview made, or why none could be. Numbers listed
in `DRYRUN_NOT_ON_WHATSAPP` are answered "not on WhatsApp"; every other valid
number is on it. `DRYRUN_SEND_DELAY_SECONDS` (a test hook, default 0) holds each
send after its line is written, as if WhatsApp's answer were slow: a crash in
that window (handed over, no outcome yet) can be staged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from wasched.common.clock import format_utc, utcnow
from wasched.common.recipients import Recipient
from wasched.sender.connection import Ready
from wasched.sender.transport import (
    Built,
    Content,
    MediaContent,
    PairingError,
    Sent,
    TextContent,
    TransportListener,
)

log = logging.getLogger("wasched.sender.dryrun")


class DryrunTransport:
    name = "dryrun"

    def __init__(
        self,
        outbox: Path,
        *,
        not_on_whatsapp: frozenset[str] = frozenset(),
        send_delay: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.outbox = outbox
        self.not_on_whatsapp = not_on_whatsapp
        self.send_delay = send_delay
        self._clock = clock
        self._listener: TransportListener | None = None

    async def start(self, listener: TransportListener) -> None:
        self._listener = listener
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        log.info("dryrun transport: sends are written to %s, nothing goes to WhatsApp", self.outbox)
        listener.connection_event(Ready())

    async def restart(self) -> None:
        if self._listener is not None:
            self._listener.connection_event(Ready())

    async def stop_client(self) -> None:
        return None

    async def stop(self, timeout: float) -> None:
        return None

    async def lookup(self, recipient: Recipient) -> Recipient | None:
        return None if recipient.jid in self.not_on_whatsapp else recipient

    async def typing(self, recipient: Recipient, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def build(self, content: Content) -> Built:
        return Built(content)  # nothing to upload: the file was fetched and checked already

    async def send(self, message_id: str, recipient: Recipient, built: Built) -> Sent:
        sent = Sent(wa_message_id="DRYRUN" + uuid.uuid4().hex[:20].upper(), at=self._clock())
        line = {
            "id": message_id,
            "jid": recipient.jid,
            **outbox_content(built.content),
            "at": format_utc(sent.at),
            "waMessageId": sent.wa_message_id,
        }
        await asyncio.to_thread(_append_line, self.outbox, json.dumps(line, ensure_ascii=False))
        if self.send_delay > 0:
            log.warning(
                "DRYRUN_SEND_DELAY_SECONDS: holding %s for %gs", message_id, self.send_delay
            )
            await asyncio.sleep(self.send_delay)
        return sent

    async def pair_code(self, phone: str) -> str:
        raise PairingError("dryrun transport does not pair: set WHATSAPP_TRANSPORT=neonize")


def outbox_content(content: Content) -> dict[str, Any]:
    """What an outbox line says about the message: its text, media, preview."""
    if isinstance(content, MediaContent):
        file = content.file
        media = {
            "type": content.kind.value,
            "size": file.size,
            "sha256": file.sha256,
            "mime": file.mime,
            "fileName": file.file_name,
        }
        return {"message": content.caption or "", "media": media}
    line: dict[str, Any] = {"message": content.text}
    if isinstance(content, TextContent) and content.link_preview:
        preview = content.preview
        line["linkPreview"] = (
            {
                "url": preview.url,
                "title": preview.title,
                "description": preview.description,
                "thumbnailBytes": len(preview.thumbnail or b""),
            }
            if preview is not None
            else {"error": content.preview_error or "no preview"}
        )
    return line


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
