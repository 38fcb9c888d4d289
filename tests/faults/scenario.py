"""One fault scenario from seeding the schedule to the verdict and its recorded figures.

A test gets a `Scenario` from the `open_scenario` fixture (tests/faults/conftest.py),
starts the services with `await scenario.start(...)`, seeds messages due relative to
that moment, injects its faults, then ends with `await scenario.finish(timeout)`, which
runs the strict checker (`invariants.check_run`) and records one `Summary`. Figures a
test asserts go through `scenario.expect(...)`: only asserted figures are recorded, so
docs/reliability.md (generated from them) holds nothing a test does not enforce.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from tests.faults.interruptions import ANY_TARGET, Claim, Kill
from tests.faults.invariants import Verdict, check_run
from tests.faults.outbox import read_outbox
from tests.faults.schedule import document
from tests.faults.series import check_series, occurrence_records, read_settled
from tests.faults.stack import Heartbeats, Stack, start_services, wait_settled
from tests.faults.summary import Figure, Summary
from wasched.common import ledger
from wasched.common.clock import utcnow
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.recurrence import occurrence_id
from wasched.common.topology import LEDGER_BUCKET

Message = dict[str, Any]
SEED_ENV = "WASCHED_TEST_SEED"
LONG_ENV = "WASCHED_TEST_LONG"
SENDER_TARGETS = ("sender",)
LONG = os.environ.get(LONG_ENV, "") not in {"", "0"}
"""`make test-long`: longer windows, more messages and more kills."""


def sized(normal: int, long: int) -> int:
    return long if LONG else normal


def scenario_seed() -> int:
    """Random per run, printed on failure and with the figures; `WASCHED_TEST_SEED` replays."""
    fixed = os.environ.get(SEED_ENV)
    return int(fixed) if fixed else random.randrange(2**31)


@dataclass
class Scenario:
    name: str
    stack: Stack
    beats: Heartbeats
    nc: NATS
    record: Callable[[Summary], None]
    seed: int
    crash_targets: tuple[str, ...] = ()
    """Processes whose SIGKILL can cut a send in flight (their names are the claim holders);
    `nats` (any target starting with it) cuts whatever send is in flight."""
    expected: dict[str, Message] = field(default_factory=dict)
    must_send: set[str] = field(default_factory=set)
    """Ids that must end `sent` (or interrupted by their own kill); `seed_document` adds to it."""
    allow_pending: set[str] = field(default_factory=set)
    never_sent: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    raced: set[str] = field(default_factory=set)
    repeated: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)
    holders: dict[str, str] = field(default_factory=dict)
    """A claim's `holder` (as the sender writes it) → the name of its process in the stack.
    A holder not listed is the process `sender` (a scenario with one sender needs nothing)."""
    foreign_prefixes: tuple[str, ...] = ()
    """Outbox ids with these prefixes were not in any document (e.g. generated `send-` ids)."""
    outcomes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    series: dict[str, list[datetime]] = field(default_factory=dict)
    """A repeating message's id → the occurrences that must each be sent once (or interrupted
    by their own kill); the outbox holds occurrence ids (tests/faults/series.py)."""
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Found during the run (e.g. a wrong stream config); reported with the invariants."""
    figures: list[Figure] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def start(self, *services: str) -> datetime:
        """Start the services, wait for their heartbeats; the moment they are ready (UTC)."""
        await start_services(self.stack, self.beats, *(services or ("poller", "sender")))
        return utcnow()

    def seed_document(self, messages: list[Message], *, must_send: bool = True) -> None:
        self.expected.update({m["id"]: dict(m) for m in messages})
        if must_send:
            self.must_send.update(m["id"] for m in messages)
        self.stack.doc.put(document(messages))

    def sent_ids(self) -> set[str]:
        """Ids recorded `sent` in the stored document now."""
        return {m.get("id") for m in self.stack.doc.get()["messages"] if m.get("status") == "sent"}

    def expect(self, label: str, value: float, op: str, bound: float) -> bool:
        """Assert one figure (checked with the invariants at `assert_ok`) and record it."""
        figure = Figure(label, value, op, bound)
        self.figures.append(figure)
        if not figure.holds():
            self.problems.append(f"figure: {figure.text()} does not hold")
        return figure.holds()

    async def finish(self, timeout: float) -> Verdict:
        """Wait for every message to settle, stop the services, check, record."""
        ids = set(self.expected) | {
            i for i, (status, _) in self.outcomes.items() if status != "pending"
        }
        _, settled = await wait_settled(self.stack, ids, timeout, frozenset(self.allow_pending))
        codes = self.stack.stop_all()
        stored = self.stack.doc.get()["messages"]
        records, lost = await self._occurrences(stored)
        outbox = read_outbox(self.stack.outbox)
        foreign = {
            i for i in outbox.ids() if self.foreign_prefixes and i.startswith(self.foreign_prefixes)
        }
        occurrences = frozenset(r["id"] for r in records)
        verdict = check_run(
            self.expected,
            stored + records,
            outbox,
            must_send=frozenset(self.must_send | occurrences),
            claims=await ledger_claims(self.nc, self.holders),
            kills=self._kills(),
            allow_pending=frozenset(self.allow_pending),
            never_sent=frozenset(self.never_sent),
            deleted=frozenset(self.deleted),
            raced=frozenset(self.raced | foreign),
            repeated=frozenset(self.repeated),
            known=frozenset(self.known | occurrences),
            outcomes=self.outcomes,
            series=frozenset(self.series),
        )
        verdict.lost += lost
        if self.expected and not (self.must_send or self.series):
            self.problems.append("the scenario names no message that must be sent")
        verdict.problems[:0] = self.problems
        self.problems = verdict.problems  # figures asserted after finish land in the verdict
        if not settled:
            verdict.fail(f"not settled within {timeout:.0f}s")
        for name, code in codes.items():
            if code != 0:
                verdict.fail(f"{name} exited {code} on SIGTERM (expected 0)")
        self._outbox_lines = len(outbox.sends)
        self.verdict = verdict
        for label, value in (
            ("duplicates", verdict.duplicates),
            ("lost", verdict.lost),
            ("early", verdict.early),
        ):
            self.expect(label, value, "==", 0)
        return verdict

    async def _occurrences(self, stored: list[Message]) -> tuple[list[Message], int]:
        """Each series' expected occurrences as records; its entry checked against them."""
        by_id = {m.get("id"): m for m in stored}
        records: list[Message] = []
        lost = 0
        for ident, instants in self.series.items():
            entry = by_id.get(ident, {"id": ident})
            ids = [occurrence_id(ident, at) for at in instants]
            mine = occurrence_records(entry, instants, await read_settled(self.nc, ids))
            problems, missing = check_series(entry, mine)
            self.problems += problems
            records += mine
            lost += missing
        return records, lost

    def _kills(self) -> list[Kill]:
        kills = []
        for event in self.stack.timeline.events:
            if event.target.startswith("nats"):
                kills.append(Kill(event.start, ANY_TARGET))
            elif event.target in self.crash_targets:
                kills.append(Kill(event.start, event.target))
        return kills

    def assert_ok(self) -> None:
        """Record the summary (always), then fail with every problem and the logs' tails."""
        verdict = self.verdict
        self.record(self._summary(verdict))
        if verdict.problems:
            verdict.problems.append(f"seed {self.seed}: replay with {SEED_ENV}={self.seed}")
            verdict.problems.extend(self._log_tails())
        verdict.assert_ok()

    def _summary(self, verdict: Verdict) -> Summary:
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
            outbox_lines=self._outbox_lines,
            duplicates=verdict.duplicates,
            lost=verdict.lost,
            early=verdict.early,
            max_late_seconds=verdict.max_late_seconds,
            outage_seconds=self.stack.timeline.outages(),
            wall_seconds=time.monotonic() - self.began,
            figures=list(self.figures),
            notes=notes,
        )
        print(summary.line())
        return summary

    def _log_tails(self) -> list[str]:
        return [
            f"--- {name} log tail ---\n{self.stack.tail(name, 2500)}" for name in self.stack.procs
        ]


async def ledger_claims(nc: NATS, holders: dict[str, str]) -> dict[str, Claim]:
    """Every id's first claim, read once from the ledger's stream (every revision, in order).

    `holders` maps a claim's holder to its process name; any other (or none) is `sender`.
    """
    js = nc.jetstream()
    stream = f"KV_{LEDGER_BUCKET}"
    try:
        last = (await js.stream_info(stream)).state.last_seq
    except NotFoundError:
        return {}
    claims: dict[str, Claim] = {}
    for seq in range(1, last + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        if not msg.data or msg.subject is None:
            continue
        entry = LedgerEntry.model_validate_json(msg.data)
        if entry.state is not LedgerState.CLAIMED:
            continue
        ident = _message_id(msg.subject.removeprefix(f"$KV.{LEDGER_BUCKET}."))
        process = holders.get(entry.holder or "", SENDER_TARGETS[0])
        claims[ident] = Claim(entry.at.timestamp(), process)  # the latest claim counts
    return claims


def still_claimed(nc: NATS) -> Callable[[re.Match[str]], Awaitable[bool]]:
    """For a kill aimed at a send: the held id (group 1) had no outcome when the kill landed."""

    async def check(match: re.Match[str]) -> bool:
        kv = await nc.jetstream().key_value(LEDGER_BUCKET)
        found = await ledger.read(kv, match[1])
        return found is not None and found[0].state is LedgerState.CLAIMED

    return check


def _message_id(key: str) -> str:
    return bytes.fromhex(key[2:]).decode() if key.startswith("h.") else key
