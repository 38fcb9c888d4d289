"""Another writer of the schedule, like the web UI: plain GET, change, plain PUT, no conditions.

It keeps its own view of what it wrote (`expected`), so the scenario can check
that none of its changes was lost, and which ids must never be sent.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.faults.invariants import WASCHED_FIELDS
from tests.faults.s3doc import DocumentClient
from tests.faults.schedule import make_message
from wasched.common.clock import format_utc, parse_utc, utcnow

Message = dict[str, Any]
Change = tuple[str, datetime] | None

MARGIN_SECONDS = 3.0
"""Only messages due at least this far ahead are edited, deleted or cancelled."""
HONOURED_SECONDS = 1.0
"""A change written at least this long before the message's time must be honoured."""


@dataclass
class WebUiWriter:
    doc: DocumentClient
    rng: random.Random
    expected: dict[str, Message]
    never_sent: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    raced: set[str] = field(default_factory=set)
    """Changed too close to their time to require either outcome."""
    actions: Counter[str] = field(default_factory=Counter)
    _added: int = 0

    async def run(self, attempts: int, gap: tuple[float, float]) -> None:
        """`attempts` changes, one every `gap` seconds (one finding nothing to change is none)."""
        for _ in range(attempts):
            await asyncio.sleep(self.rng.uniform(*gap))  # the writer's own pace
            await asyncio.to_thread(self.act_once)

    def act_once(self) -> None:
        data = self.doc.get()
        now = utcnow()
        action = self.rng.choice(["add", "edit", "reschedule", "delete", "cancel", "annotate"])
        changed = getattr(self, f"_{action}")(data["messages"], now)
        if changed is None:
            return
        self.doc.put(data)
        self.actions[action] += 1
        ident, deadline = changed
        if (deadline - utcnow()).total_seconds() < HONOURED_SECONDS:
            self.raced.add(ident)  # written too close to its time to require either outcome

    # each action returns (id, the earliest time its change must be honoured by), or None

    def _add(self, messages: list[Message], now: datetime) -> Change:
        self._added += 1
        due = now + timedelta(seconds=self.rng.uniform(MARGIN_SECONDS, 15))
        message = make_message(self._added, due, self.rng, tag="ui")
        messages.append(message)
        self.expected[message["id"]] = dict(message)
        return message["id"], due

    def _edit(self, messages: list[Message], now: datetime) -> Change:
        message = self._pick(messages, now)
        if message is None:
            return None
        message["message"] = f"{message['message']} (edited {self.actions['edit'] + 1})"
        message["editedFrom"] = "web"
        self._remember(message)
        return message["id"], parse_utc(message["scheduledTime"])

    def _reschedule(self, messages: list[Message], now: datetime) -> Change:
        message = self._pick(messages, now)
        if message is None:
            return None
        old = parse_utc(message["scheduledTime"])
        moved = now + timedelta(seconds=self.rng.uniform(MARGIN_SECONDS + 1, 20))
        message["scheduledTime"] = format_utc(moved)
        self._remember(message)
        return message["id"], min(old, moved)

    def _delete(self, messages: list[Message], now: datetime) -> Change:
        message = self._pick(messages, now)
        if message is None:
            return None
        messages.remove(message)
        self.expected.pop(message["id"], None)
        self.never_sent.add(message["id"])
        self.deleted.add(message["id"])
        return message["id"], parse_utc(message["scheduledTime"])

    def _cancel(self, messages: list[Message], now: datetime) -> Change:
        message = self._pick(messages, now)
        if message is None:
            return None
        message["status"] = "cancelled"
        self._remember(message)
        self.never_sent.add(message["id"])
        self.cancelled.add(message["id"])
        return message["id"], parse_utc(message["scheduledTime"])

    def _annotate(self, messages: list[Message], now: datetime) -> Change:
        """A field wasched does not know, on any message, settled or not."""
        known = [m for m in messages if m.get("id") in self.expected]
        if not known:
            return None
        message = self.rng.choice(known)
        message["ui"] = {"starred": self.rng.random() < 0.5, "n": self.actions["annotate"]}
        self._remember(message)
        return message["id"], now + timedelta(days=1)  # no timing constraint

    def _pick(self, messages: list[Message], now: datetime) -> Message | None:
        horizon = now + timedelta(seconds=MARGIN_SECONDS)
        eligible = [
            m
            for m in messages
            if m.get("status") == "pending"
            and m.get("id") in self.expected
            and m["id"] not in self.raced
            and parse_utc(m["scheduledTime"]) >= horizon
        ]
        return self.rng.choice(eligible) if eligible else None

    def _remember(self, message: Message) -> None:
        mine = {k: v for k, v in message.items() if k not in WASCHED_FIELDS}
        self.expected[message["id"]] = {**self.expected.get(message["id"], {}), **mine}
