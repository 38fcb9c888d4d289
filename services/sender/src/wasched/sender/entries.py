"""What the ledger already says about an id, as a verdict for the hand-over in hand.

`policy.standing` decides what an entry means; this module reads the entry, asks the
liveness bucket about a claim's holder, and writes what follows: `interrupted` over a claim
whose holder is gone, or a final refusal for an id nobody claimed.
"""

from __future__ import annotations

import logging

from wasched.common import ledger
from wasched.common.events import Outcome
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.sender.attempt import RETRY_SECONDS, Parts, Retry, Skip, Verdict, interrupted
from wasched.sender.inbound import Job
from wasched.sender.policy import Holder, Standing, standing
from wasched.sender.status import Stats

log = logging.getLogger("wasched.sender")
ROUNDS = 10


class Entries:
    def __init__(self, parts: Parts, liveness_seconds: float, stats: Stats) -> None:
        self.parts = parts
        self._suspect_delay = max(1.0, liveness_seconds / 2)
        self.stats = stats

    async def verdict(
        self, job: Job, current: tuple[LedgerEntry, int] | None = None, *, read: bool = True
    ) -> Verdict | None:
        """None: the id may be claimed for this job's version; else what to do instead."""
        for _ in range(ROUNDS):
            if read:
                current = await ledger.read(self.parts.kv, job.id)
            if current is None:
                return None
            verdict = await self._about(job, *current)
            if verdict is not _MOVED:
                return verdict  # type: ignore[return-value]
            read = True  # the entry changed while we wrote: look again
        return Retry("the ledger entry keeps changing", RETRY_SECONDS)

    async def final_unsent(self, job: Job, outcome: Outcome, jid: str | None = None) -> Verdict:
        """Record a refusal (nothing was sent); an entry that got there first wins."""
        mine = LedgerEntry.from_outcome(outcome, jid)
        recorded = await ledger.record_final(self.parts.kv, job.id, mine)
        if recorded is mine:
            return outcome
        return await self.verdict(job) or Retry("the ledger entry changed meanwhile", 1.0)

    async def _about(self, job: Job, entry: LedgerEntry, revision: int) -> Verdict | object | None:
        holder = None
        if entry.state is LedgerState.CLAIMED:
            holder = await self.parts.liveness.state_of(entry.holder)
        match standing(entry, job.version, holder):
            case Standing.FREE:
                return None
            case Standing.OUT_OF_DATE:
                self.stats.out_of_date += 1
                gate = f"only {entry.version} may be sent" if entry.version else "withdrawn"
                log.info("%s: version %s is out of date (%s); not sent", job.id, job.version, gate)
                return Skip(
                    "out of date: the message changed or was withdrawn since this hand-over"
                )
            case Standing.FINAL:
                log.info("%s is %s already; re-publishing its outcome", job.id, entry.state.value)
                return entry.outcome(job.id)
            case Standing.HELD:
                delay = RETRY_SECONDS if holder is Holder.ALIVE else self._suspect_delay
                log.info(
                    "%s is held by %s (%s); looking again in %gs",
                    job.id,
                    entry.holder,
                    holder,
                    delay,
                )
                return Retry(f"held by {entry.holder}", delay)
        outcome = interrupted(job, entry.version)
        if not await self.parts.records.orphaned(job.id, entry, revision, outcome):
            return _MOVED
        log.warning(
            "%s was claimed by %s, which is gone, without an outcome (crash or timeout "
            "mid-send); not sending it again",
            job.id,
            entry.holder or "an older sender",
        )
        return outcome


_MOVED = object()
