"""Reading one stored message, its optional kinds included, wherever the poller needs it.

A message without the fields of issue 15 (`kinds.has_kinds` is False) is read by
`messages.read_message` exactly as before. One with them is read by `kinds.read_kinds`
first: a `scheduledTime`/`expiresAt` without an offset is a wall time in its
`timezone`, resolved by `localtime`'s one rule for clock changes, and everything after
(what is due, what expired, the instant handed to NATS) uses that instant.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from wasched.common.document import Document
from wasched.common.events import DueMessage, MediaSpec
from wasched.common.kinds import KIND_FIELDS, Kinds, has_kinds, read_kinds
from wasched.common.messages import ErrorKind, MessageInvalid, ScheduledMessage, read_message
from wasched.common.recurrence import Series


@dataclass(slots=True)
class Reading:
    message: ScheduledMessage
    """For a series: its first occurrence, the text and the recipient of every one."""
    kinds: Kinds | None = None
    """None: a message of the original format."""

    @property
    def series(self) -> Series | None:
        return self.kinds.series if self.kinds is not None else None


def read(raw: dict[str, Any], zone: ZoneInfo, media_prefix: str | None = None) -> Reading:
    """Validate a pending message; `MessageInvalid` names the field. `zone` is the display
    zone (a series without `timezone` runs there); `media_prefix` is where `media.key` must
    point."""
    if raw.keys().isdisjoint(KIND_FIELDS) or not has_kinds(raw):  # the first: fast
        return Reading(read_message(raw))
    kinds = _kinds(raw, zone, media_prefix)
    if kinds.series is not None and kinds.expires_at is not None:
        raise MessageInvalid(
            ErrorKind.VALIDATION,
            "expiresAt: a repeating message ends by its rule (COUNT or UNTIL in repeat, e.g. "
            "FREQ=WEEKLY;UNTIL=20271231), not by expiresAt",
        )
    text = (kinds.text or "") if kinds.media is not None else None
    message = read_message(raw, scheduled=kinds.scheduled, expires_at=kinds.expires_at, text=text)
    return Reading(message, kinds)


def is_series(raw: dict[str, Any]) -> bool:
    """A repeating message (its occurrences are decided by `recurring`, not as one message)."""
    return raw.get("repeat") is not None


def series_keys(doc: Document) -> set[str]:
    """The keys of repeating messages (a document without any costs one look per message)."""
    if not any(is_series(raw) for raw in doc.messages):
        return set()
    return {k for k, raw in doc.keyed() if k is not None and is_series(raw)}


_READ_BY_KINDS = ("scheduledTime", "expiresAt", "message", *KIND_FIELDS)
_KINDS_KEPT = 4096
_kept: OrderedDict[tuple[str, ZoneInfo, str | None], Kinds] = OrderedDict()
_kept_lock = threading.Lock()


def _kinds(raw: dict[str, Any], zone: ZoneInfo, media_prefix: str | None) -> Kinds:
    """`read_kinds`, once per content: every poll reads the same series again, and a rule
    keeps what it generated (a long-running daily series costs a list walk, not a rerun)."""
    fields = json.dumps([raw.get(name) for name in _READ_BY_KINDS], default=str)
    key = (fields, zone, media_prefix)
    with _kept_lock:  # the poll reads in a thread, requests in the event loop
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
            return found
    found = read_kinds(raw, zone, media_key_prefix=media_prefix)
    with _kept_lock:
        _kept[key] = found
        if len(_kept) > _KINDS_KEPT:
            _kept.popitem(last=False)
    return found


def due_message(msg: ScheduledMessage, version: str | None, reading: Reading | None) -> DueMessage:
    """The hand-over of a message as read (for an occurrence: its id and instant), with its
    media and link preview: `message` is the text it sends (the caption of an image, video
    or document; "" for audio and a voice note)."""
    kinds = reading.kinds if reading is not None else None
    media = kinds.media if kinds is not None else None
    return DueMessage(
        id=msg.id,
        to=msg.to,
        message=msg.text,
        contact_name=msg.contact_name,
        scheduled_time=msg.scheduled_time,
        expires_at=msg.expires_at,
        version=version,
        media=MediaSpec.from_media(media) if media is not None else None,
        link_preview=(kinds.link_preview or None) if kinds is not None else None,
    )
