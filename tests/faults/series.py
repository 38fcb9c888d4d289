"""How the checker sees a repeating message: occurrence by occurrence, and its one entry.

The outbox holds occurrence ids (`<series id>@<UTC instant>`), the document one entry per
series, and the ledger one entry per occurrence. Each occurrence the scenario expects
becomes a record shaped like a stored message (the series' recipient and text, the
occurrence's time, its final state from the ledger), and the records go through
`invariants.check_run` with the stored messages: at most once, honestly recorded, not
early, interrupted only by its own kill. `check_series` then holds the series' entry to
those records: every expected occurrence settled (none missed: a scenario's restarts are
not downtime), `occurrences`, `history`, `lastStatus`, `lastSentAt`, `nextAt` and the
entry's final status as wasched must write them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS

from wasched.common import ledger
from wasched.common.clock import format_utc
from wasched.common.ledger import LedgerEntry
from wasched.common.recurrence import occurrence_id
from wasched.common.series import HISTORY_SIZE
from wasched.common.topology import LEDGER_BUCKET

Message = dict[str, Any]


def occurrence_records(
    entry: Message, instants: Sequence[datetime], settled: Mapping[str, LedgerEntry | None]
) -> list[Message]:
    """One record per expected occurrence; `status` None when the ledger has no final state."""
    records = []
    for at in instants:
        ident = occurrence_id(entry["id"], at)
        record: Message = {
            "id": ident,
            "to": entry.get("to"),
            "message": entry.get("message"),
            "scheduledTime": format_utc(at),
            "status": None,
        }
        found = settled.get(ident)
        if found is not None and found.is_final:
            record["status"] = found.state.value
            if found.sent_at is not None:
                record["sentAt"] = format_utc(found.sent_at)
            if found.error_kind is not None:
                record["errorKind"] = found.error_kind.value
        records.append(record)
    return records


async def read_settled(nc: NATS, ids: Sequence[str]) -> dict[str, LedgerEntry | None]:
    kv = await nc.jetstream().key_value(LEDGER_BUCKET)
    found: dict[str, LedgerEntry | None] = {}
    for ident in ids:
        entry = await ledger.read(kv, ident)
        found[ident] = entry[0] if entry else None
    return found


def check_series(entry: Message, records: Sequence[Message]) -> tuple[list[str], int]:
    """Problems with a finished series' entry given its occurrences' records, and how many
    expected occurrences were lost (never settled)."""
    name = entry.get("id")
    problems = [
        f"{r['id']}: never settled (not sent, not recorded: missed or lost)"
        for r in records
        if r["status"] is None
    ]
    lost = len(problems)
    settled = [r for r in records if r["status"] is not None]
    if entry.get("occurrences") != len(settled):
        problems.append(
            f"{name}: occurrences={entry.get('occurrences')!r}, {len(settled)} were settled"
        )
    expected = [_history_item(r) for r in settled[-HISTORY_SIZE:]]
    got = [{k: h.get(k) for k in ("at", "status", "sentAt")} for h in entry.get("history", [])]
    if got != expected:
        problems.append(f"{name}: history {got} does not match the ledger {expected}")
    sent = [r["sentAt"] for r in settled if r["status"] == "sent"]
    if entry.get("lastSentAt") != (max(sent) if sent else None):
        problems.append(f"{name}: lastSentAt={entry.get('lastSentAt')!r}, latest send {sent[-1:]}")
    last = settled[-1]["status"] if settled else None
    if entry.get("lastStatus") != last:
        problems.append(f"{name}: lastStatus={entry.get('lastStatus')!r}, expected {last!r}")
    if len(settled) == len(records) and (entry.get("nextAt"), entry.get("status")) != (None, last):
        problems.append(
            f"{name}: ended with nextAt={entry.get('nextAt')!r} status={entry.get('status')!r}, "
            f"expected nextAt=None status={last!r}"
        )
    return problems, lost


def _history_item(record: Message) -> dict[str, Any]:
    return {
        "at": record["scheduledTime"],
        "status": record["status"],
        "sentAt": record.get("sentAt"),
    }
