"""One fault scenario from seeding the schedule to the verdict and its printed figures."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from tests.faults.invariants import Verdict, check_run, is_interrupted
from tests.faults.outbox import read_outbox
from tests.faults.schedule import document
from tests.faults.stack import Stack, wait_settled
from tests.faults.summary import Summary
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.topology import LEDGER_BUCKET, ledger_key

Message = dict[str, Any]
HISTORY_READS = 5


def scenario_seed() -> int:
    """Random per run, printed with the figures; set WASCHED_FAULTS_SEED to replay one."""
    fixed = os.environ.get("WASCHED_FAULTS_SEED")
    return int(fixed) if fixed else random.randrange(2**31)


@dataclass
class Scenario:
    name: str
    stack: Stack
    report: list[Summary]
    seed: int = field(default_factory=scenario_seed)
    expected: dict[str, Message] = field(default_factory=dict)
    allow_pending: set[str] = field(default_factory=set)
    never_sent: set[str] = field(default_factory=set)
    raced: set[str] = field(default_factory=set)
    foreign_prefixes: tuple[str, ...] = ()
    """Outbox ids with these prefixes were not in any document (e.g. generated `send-` ids)."""
    outcomes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    crash_targets: tuple[str, ...] = ("sender",)
    """Disruptions that may interrupt a send in flight (and so explain `interrupted`)."""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Found during the run (e.g. a wrong stream config); reported with the invariants."""
    began: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def seed_document(self, messages: list[Message]) -> None:
        self.expected.update({m["id"]: dict(m) for m in messages})
        self.stack.doc.put(document(messages))

    async def finish(self, js: JetStreamContext, timeout: float) -> Verdict:
        """Wait for every message to settle, stop the services, check, print, assert."""
        ids = set(self.expected) | {
            i for i, (status, _) in self.outcomes.items() if status != "pending"
        }
        _, settled = await wait_settled(self.stack, ids, timeout, frozenset(self.allow_pending))
        codes = self.stack.stop_all()
        stored = self.stack.doc.get()["messages"]
        outbox = read_outbox(self.stack.outbox)
        interrupted = [m["id"] for m in stored if is_interrupted(m) and "id" in m]
        foreign = {
            i for i in outbox.ids() if self.foreign_prefixes and i.startswith(self.foreign_prefixes)
        }
        verdict = check_run(
            self.expected,
            stored,
            outbox,
            claims=await claim_times(js, interrupted),
            disruptions=self.stack.timeline.starts(*self.crash_targets),
            allow_pending=frozenset(self.allow_pending),
            never_sent=frozenset(self.never_sent),
            raced=frozenset(self.raced | foreign),
            outcomes=self.outcomes,
        )
        verdict.problems[:0] = self.problems
        if not settled:
            verdict.fail(f"not settled within {timeout:.0f}s")
        for name, code in codes.items():
            if code != 0:
                verdict.fail(f"{name} exited {code} on SIGTERM (expected 0)")
        self._record(verdict, len(outbox.sends))
        if verdict.problems:
            verdict.problems.extend(self._log_tails())
        return verdict

    def _record(self, verdict: Verdict, outbox_lines: int) -> None:
        notes = list(self.notes)
        if tracebacks := self.stack.tracebacks():
            notes.append(f"tracebacks in logs: {tracebacks}")
        if verdict.problems:
            notes.append(f"FAILED: {len(verdict.problems)} problems, first: {verdict.problems[0]}")
        summary = Summary(
            scenario=self.name,
            seed=self.seed,
            messages=len(self.expected),
            kills=self.stack.timeline.kills(),
            statuses=dict(verdict.statuses),
            interrupted=verdict.interrupted,
            outbox_lines=outbox_lines,
            duplicates=verdict.duplicates,
            lost=verdict.lost,
            early=verdict.early,
            max_late_seconds=verdict.max_late_seconds,
            outage_seconds=self.stack.timeline.outages(),
            wall_seconds=time.monotonic() - self.began,
            notes=notes,
        )
        self.report.append(summary)
        print(summary.line())

    def _log_tails(self) -> list[str]:
        return [
            f"--- {name} log tail ---\n{self.stack.tail(name, 2500)}" for name in self.stack.procs
        ]


async def claim_times(js: JetStreamContext, ids: list[str]) -> dict[str, float]:
    """When each id was claimed, from the ledger's history (the claim revision's own time)."""
    if not ids:
        return {}
    kv = await js.key_value(LEDGER_BUCKET)
    times: dict[str, float] = {}
    for ident in ids:
        claimed = await _claim_time(kv, ident)
        if claimed is not None:
            times[ident] = claimed
    return times


async def _claim_time(kv: KeyValue, ident: str) -> float | None:
    # nats-py's history() can end before the first entry arrives (its end-of-history
    # marker races the ordered consumer), so an empty or short answer is read again.
    for _ in range(HISTORY_READS):
        try:
            entries = await kv.history(ledger_key(ident))
        except NoKeysError:
            continue
        for entry in entries:
            state = LedgerEntry.model_validate_json(entry.value) if entry.value else None
            if state is not None and state.state is LedgerState.CLAIMED:
                return state.at.timestamp()
    return None
