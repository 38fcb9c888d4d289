"""What the dryrun transport handed to "WhatsApp": one JSON line per send."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from wasched.common.clock import parse_utc

_ID = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Send:
    id: str
    jid: str
    message: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class Outbox:
    sends: list[Send]
    torn: list[str]
    """Lines cut short by a SIGKILL mid-write; their id (if readable) still counts as a send."""

    def counts(self) -> Counter[str]:
        return Counter(send.id for send in self.sends)

    def ids(self) -> set[str]:
        return {send.id for send in self.sends}

    def by_id(self) -> dict[str, Send]:
        return {send.id: send for send in self.sends}


def read_outbox(path: Path) -> Outbox:
    if not path.exists():
        return Outbox(sends=[], torn=[])
    sends: list[Send] = []
    torn: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            sends.append(_send(data))
        except (ValueError, KeyError, TypeError):
            torn.append(line)
            match = _ID.search(line)
            if match:
                sends.append(Send(id=json.loads(f'"{match[1]}"'), jid="?", message="?", at=None))
    return Outbox(sends=sends, torn=torn)


def _send(data: dict[str, object]) -> Send:
    at = data.get("at")
    return Send(
        id=str(data["id"]),
        jid=str(data["jid"]),
        message=str(data["message"]),
        at=parse_utc(at) if isinstance(at, str) else None,
    )
