"""Schedules for the scenarios: a few hundred realistic messages due over a short window.

Messages look like the existing writers' (web UI, API): recipients in several
spellings, emoji and non-Latin text, fields wasched does not know, the same
`scheduledTime` shared by bursts of messages. Everything, ids included, comes from
the scenario's `rng`, so one seed replays one schedule.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from wasched.common.clock import format_utc

Message = dict[str, Any]

TEXTS = [
    "Happy Birthday! 🎂",
    "Running 10 minutes late, sorry!",
    "See you tomorrow",
    "Привіт! Як справи?",
    "مرحبا، نلتقي غدا",
    "家族みんなによろしく",
    "Line one\nline two\n\ttabbed",
    "Quotes \"double\" and 'single' and \\ backslash",
]
WRITERS = ["web", "api", "crm"]


def spellings(n: int) -> str:
    """Valid UK mobile numbers, written the ways people write them."""
    digits = f"4479571896{n % 100:02d}"
    forms = [digits, f"+44 7957 1896{n % 100:02d}", f"00{digits}", f"{digits}@s.whatsapp.net"]
    return forms[n % len(forms)]


def make_message(index: int, due: datetime, rng: random.Random, tag: str = "m") -> Message:
    ident = f"{tag}{index:04d}_{rng.getrandbits(32):08x}"
    return {
        "id": ident,
        "to": spellings(rng.randrange(100)),
        "contactName": rng.choice(["Reem", "Sam", "Ola", "Zoë", None]),
        "message": f"{rng.choice(TEXTS)} #{ident}",
        "scheduledTime": format_utc(due),
        "status": "pending",
        "createdAt": format_utc(due - timedelta(minutes=rng.randrange(5, 600))),
        "createdFrom": rng.choice(WRITERS),
        "sentAt": None,
        "error": None,
        "labels": rng.choice([[], ["family"], ["work", "🎉"]]),
    }


def make_schedule(
    count: int,
    start: datetime,
    window_seconds: float,
    rng: random.Random,
    tag: str = "m",
) -> list[Message]:
    """`count` messages due between `start` and `start + window`, some in bursts."""
    messages = []
    for index in range(count):
        offset = rng.uniform(0, window_seconds)
        if index and rng.random() < 0.1:  # a burst: same instant as the previous one
            offset = (_due(messages[-1]) - start).total_seconds()
        messages.append(make_message(index, start + timedelta(seconds=offset), rng, tag))
    return messages


def document(messages: list[Message]) -> dict[str, Any]:
    """The stored object, with top-level fields a web UI keeps there."""
    return {"messages": messages, "version": 3, "ui": {"sort": "scheduledTime"}}


def _due(message: Message) -> datetime:
    return datetime.fromisoformat(message["scheduledTime"])
