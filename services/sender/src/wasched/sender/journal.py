"""The local journal: a result WhatsApp gave us is kept on disk until NATS has it.

Between WhatsApp's answer and the ledger write lies the only moment a known success could
be lost (a NATS outage, a crash). Each result of a claimed send is appended here, flushed and
fsynced, before the ledger is settled, and marked done once the outcome is published; a
restarted sender settles what is still pending before it takes new work. The file lives
beside the WhatsApp session (`SENDER_JOURNAL`) and is rewritten with only the pending
results at every start (and whenever nothing is pending and it passed 256 KiB), so it
stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from wasched.common.events import Outcome

log = logging.getLogger("wasched.sender.journal")
TRIM_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Kept:
    """A result for a claim of ours that the ledger may not have yet."""

    outcome: Outcome
    revision: int
    """The revision of our claim (the compare-and-set base for settling it)."""
    jid: str | None

    @property
    def id(self) -> str:
        return self.outcome.id

    def line(self) -> dict[str, object]:
        return {
            "op": "kept",
            "outcome": json.loads(self.outcome.to_json()),
            "revision": self.revision,
            "jid": self.jid,
        }


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, Kept] = {}

    def load(self) -> dict[str, Kept]:
        """Read what is pending and rewrite the file with only that (at start)."""
        self.pending = {}
        if self.path.exists():
            for number, text in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
                self._apply(number, text)
        self._rewrite()
        if self.pending:
            log.warning(
                "journal: %d result(s) not yet in NATS; settling them first", len(self.pending)
            )
        return dict(self.pending)

    async def keep(self, kept: Kept) -> None:
        self.pending[kept.id] = kept
        await asyncio.to_thread(self._append, kept.line())

    async def done(self, message_id: str) -> None:
        if self.pending.pop(message_id, None) is not None:
            await asyncio.to_thread(self._append, {"op": "done", "id": message_id})
            if not self.pending:
                await asyncio.to_thread(self._trim)

    def get(self, message_id: str) -> Kept | None:
        return self.pending.get(message_id)

    def _rewrite(self) -> None:
        """The file with only what is pending (atomically: a crash leaves old or new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        lines = "".join(json.dumps(kept.line()) + "\n" for kept in self.pending.values())
        with temporary.open("w", encoding="utf-8") as out:
            out.write(lines)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)

    def _append(self, line: dict[str, object]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def _trim(self) -> None:
        """Nothing pending: a long file holds only history; start it afresh."""
        with contextlib.suppress(OSError):
            if self.path.stat().st_size > TRIM_BYTES:
                self._rewrite()

    def _apply(self, number: int, text: str) -> None:
        if not text.strip():
            return
        try:
            line = json.loads(text)
            if line["op"] == "done":
                self.pending.pop(line["id"], None)
                return
            outcome = Outcome.model_validate(line["outcome"])
            self.pending[outcome.id] = Kept(outcome, int(line["revision"]), line.get("jid"))
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            # a line cut short by a crash mid-write: the result it held never reached disk
            log.warning("journal line %d is unreadable (%s); skipped", number, exc)
