"""The schedules the benchmarks store: realistic ones and the worst case of issue 16.

Realistic: 500 contacts that repeat, short ASCII texts. Worst case: every message
to a different number, emoji in every text (100k of them defeat any cache sized
for "a schedule repeats its contacts", and emoji make the UTF-8 text and the
decoded str differ in size). Bodies are written the way a browser writes JSON
(`JSON.stringify(doc, null, 2)`: two-space indent, UTF-8, not ASCII-escaped).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from wasched.common.clock import format_utc

EMOJI_TEXT = "Happy birthday {name}! 🎉🎂 Dinner at 7 — bring the 🍰, see you there ✨ ({n})"
PLAIN_TEXT = "bench {n}"
MARK = "⟨v0⟩"
"""In the first message's text: swapped for `⟨v1⟩` (same length) to change one message."""


def contact(i: int) -> str:
    """One of 500 valid UK mobile numbers: real schedules repeat their contacts."""
    return f"44795{i % 500:07d}"


def distinct(i: int) -> str:
    """A different valid UK mobile number for each i < 10_000_000."""
    return f"44795{i:07d}"


def message(
    ident: str, when: datetime, *, to: str, text: str, name: str = "Bench"
) -> dict[str, Any]:
    stamp = format_utc(when)
    return {
        "id": ident,
        "to": to,
        "contactName": name,
        "message": text,
        "scheduledTime": stamp,
        "status": "pending",
        "createdAt": stamp,
        "createdFrom": "bench",
        "sentAt": None,
        "error": None,
    }


def realistic(count: int, tag: str, first: datetime, step: timedelta) -> list[dict[str, Any]]:
    msgs = [
        message(f"{tag}{i}", first + step * i, to=contact(i), text=PLAIN_TEXT.format(n=i))
        for i in range(count)
    ]
    return _marked(msgs)


def worst_case(count: int, tag: str, first: datetime, step: timedelta) -> list[dict[str, Any]]:
    msgs = [
        message(
            f"{tag}{i}",
            first + step * i,
            to=distinct(i),
            text=EMOJI_TEXT.format(name=f"Zoë {i}", n=i),
            name=f"Zoë ✨ {i}",
        )
        for i in range(count)
    ]
    return _marked(msgs)


def _marked(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if msgs:
        msgs[0]["message"] += MARK
    return msgs


def render(messages: list[dict[str, Any]]) -> bytes:
    return json.dumps({"messages": messages}, ensure_ascii=False, indent=2).encode()


def one_changed(body: bytes, version: int) -> bytes:
    """The same document with the first message's text changed (same length)."""
    old, new = MARK.encode(), MARK.replace("0", str(version % 10)).encode()
    assert body.count(old) == 1, "the document has no change mark"
    return body.replace(old, new, 1)
