"""Reading one input message (`wasched.due` or `wasched.send`) into a job, or a reason to reject it.

Pure: the stream sequence and storage time come in with the payload. A send
request without an id takes the caller's `Nats-Msg-Id` (without a `send:` prefix), so a
caller that publishes again after a lost PubAck names the same message; without either it
gets an id derived from where JetStream stored it, so a redelivery of the same request can
never be sent under a second id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from wasched.common.events import DueMessage, SendRequest
from wasched.common.media import Media
from wasched.common.messages import MessageInvalid
from wasched.common.topology import DUE, REPLY_HEADER, SEND

MSG_ID_HEADER = "Nats-Msg-Id"
SEND_ID_PREFIX = "send"
MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    to: str
    text: str
    """The text to send: the message, or a media message's caption ("" for none)."""
    subject: str
    scheduled: datetime
    """When it was meant to go: `scheduledTime`, or when a send request was stored."""
    expires_at: datetime | None = None
    reply_to: str | None = None
    generated_id: bool = False
    version: str | None = None
    """The content version of a `wasched.due` hand-over (None: a send request, an older poller)."""
    media: Media | None = None
    link_preview: bool = False

    @property
    def pace_text(self) -> str:
        """What the same-text guard compares: the text, and which file a media message sends."""
        if self.media is None:
            return self.text
        return f"{self.text}\n[{self.media.kind.value}: {self.media.where}]"


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    id: str | None = None
    """A readable id of a malformed `wasched.due` message (it gets a `validation` outcome)."""
    reply_to: str | None = None


def read_job(
    subject: str,
    data: bytes,
    headers: dict[str, str] | None,
    *,
    stream_seq: int,
    stored_at: datetime,
    media_key_prefix: str | None = None,
) -> Job | Rejected:
    """`media_key_prefix` (`MEDIA_KEY_PREFIX`): where a `media.key` must point."""
    reply_to = (headers or {}).get(REPLY_HEADER) or None
    if subject == DUE:
        return _due(data, reply_to, media_key_prefix)
    if subject == SEND:
        caller_id = _caller_id((headers or {}).get(MSG_ID_HEADER))
        return _send(data, reply_to, stream_seq, stored_at, caller_id, media_key_prefix)
    return Rejected(f"unexpected subject {subject!r}", reply_to=reply_to)


def generated_id(stream_seq: int, stored_at: datetime) -> str:
    return f"send-{int(stored_at.timestamp() * 1000)}-{stream_seq}"


def describe(exc: ValidationError) -> str:
    """One line naming each bad field, e.g. `to: String should have at least 1 character`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "json_invalid":
            return f"payload is not valid JSON ({err['msg'].removeprefix('Invalid JSON: ')})"
        if err["type"] == "model_type":
            return "payload must be a JSON object"
        text = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {text}" if where else text)  # a rule across fields names them
    return "; ".join(parts)


def _caller_id(msg_id: str | None) -> str | None:
    """The caller's `Nats-Msg-Id` as a message id: `send:abc` and `abc` both name `abc`."""
    if not msg_id:
        return None
    ident = msg_id.strip().removeprefix(f"{SEND_ID_PREFIX}:").strip()
    return ident if 0 < len(ident) <= MAX_ID_LENGTH else None


def _due(data: bytes, reply_to: str | None, prefix: str | None) -> Job | Rejected:
    try:
        due = DueMessage.model_validate_json(data)
        content = due.content(prefix)
    except ValidationError as exc:
        return Rejected(describe(exc), id=_readable_id(data), reply_to=reply_to)
    except MessageInvalid as exc:
        return Rejected(exc.reason, id=due.id, reply_to=reply_to)
    return Job(
        id=due.id,
        to=due.to,
        text=content.text or "",
        subject=DUE,
        scheduled=due.scheduled_time,
        expires_at=due.expires_at,
        reply_to=reply_to,
        version=due.version,
        media=content.media,
        link_preview=content.link_preview,
    )


def _send(
    data: bytes,
    reply_to: str | None,
    seq: int,
    stored_at: datetime,
    caller_id: str | None,
    prefix: str | None,
) -> Job | Rejected:
    try:
        request = SendRequest.model_validate_json(data)
        content = request.content(prefix)
    except ValidationError as exc:
        return Rejected(describe(exc), reply_to=reply_to)
    except MessageInvalid as exc:
        return Rejected(exc.reason, id=request.id, reply_to=reply_to)
    ident = request.id or caller_id
    return Job(
        id=ident or generated_id(seq, stored_at),
        to=request.to,
        text=content.text or "",
        subject=SEND,
        scheduled=stored_at,
        reply_to=reply_to,
        generated_id=ident is None,
        media=content.media,
        link_preview=content.link_preview,
    )


def _readable_id(data: bytes) -> str | None:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    ident = raw.get("id") if isinstance(raw, dict) else None
    return ident if isinstance(ident, str) and ident.strip() else None
