"""`wasched schedule list`: the stored schedule as a table, times in the display zone.

A repeating message shows its rule and, as its time, the next occurrence wasched wrote
(`nextAt`; `scheduledTime` until the first is recorded); a message with media shows its
type before the text (`[image] Merry Christmas`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from wasched.common.clock import TimeFormatError, format_display, parse_utc
from wasched.common.document import Document, DocumentError
from wasched.common.localtime import load_zone, parse_time
from wasched.common.settings import Settings

COLUMNS = ("ID", "WHEN", "REPEAT", "STATUS", "TO", "NAME", "MESSAGE")
MESSAGE_WIDTH = 40


class ListError(RuntimeError):
    """The schedule could not be read."""


def _when(raw: dict[str, Any], zone: tzinfo) -> tuple[str, str]:
    """(sort key, shown text): unreadable times sort last and show as written."""
    value = raw.get("scheduledTime")
    if raw.get("repeat") and isinstance(raw.get("nextAt"), str):
        value = raw["nextAt"]
    try:
        moment = _instant(raw, value)
    except (TimeFormatError, OverflowError, ValueError):
        return ("~", f"{value!s} (invalid)")
    return (moment.isoformat(), format_display(moment, zone))


def _instant(raw: dict[str, Any], value: object) -> datetime:
    """A stored time: an instant, or a wall time in the message's `timezone`."""
    if raw.get("timezone") is None:
        return parse_utc(value)
    return parse_time(value, load_zone(raw["timezone"]))  # LocalTimeError is a ValueError


def _cell(value: object, width: int | None = None) -> str:
    text = "" if value is None else " ".join(str(value).split())
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def rows(
    messages: Iterable[dict[str, Any]], zone: tzinfo, statuses: Sequence[str] = ()
) -> list[tuple[str, ...]]:
    """One row per message (optionally only some statuses), earliest first."""
    keyed = []
    for raw in messages:
        status = _cell(raw.get("status"))
        if statuses and status not in statuses:
            continue
        key, shown = _when(raw, zone)
        row = (
            _cell(raw.get("id")),
            shown,
            _cell(raw.get("repeat"), 30),
            status + (f" ({_cell(raw['error'], 50)})" if raw.get("error") else ""),
            _cell(raw.get("to")),
            _cell(raw.get("contactName"), 20),
            _cell(_text(raw), MESSAGE_WIDTH),
        )
        keyed.append((key, row))
    return [row for _, row in sorted(keyed, key=lambda item: item[0])]


def _text(raw: dict[str, Any]) -> object:
    media = raw.get("media")
    if not isinstance(media, dict):
        return raw.get("message")
    text = raw.get("message") or media.get("caption") or ""
    return f"[{_cell(media.get('type'), 10) or 'media'}] {text}".rstrip()


def render(table: list[tuple[str, ...]]) -> str:
    if not table:
        return "no messages"
    widths = [max(len(r[i]) for r in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [COLUMNS, *table]
    ]
    return "\n".join(lines)


async def load(settings: Settings) -> Document:
    # aioboto3 takes ~1 s to import: only `schedule list` pays for it.
    from wasched.common.store import StoreError, open_store

    if settings.s3_access_key_id is None and settings.s3_endpoint is None:
        raise ListError(
            "S3 is not configured: set S3_ENDPOINT, S3_BUCKET and the keys in .env "
            "(for the local stack: --env-file .data/local.env)"
        )
    try:
        async with open_store(settings) as store:
            snapshot = await store.load()
    except DocumentError as exc:
        raise ListError(f"the stored schedule cannot be read: {exc}") from None
    except StoreError as exc:
        raise ListError(str(exc)) from None
    return snapshot.doc
