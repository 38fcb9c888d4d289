"""Writing a claim's result into the ledger, so that a known result is never thrown away.

The result of a claimed send is journaled first (journal.py), then written over the claim
with compare-and-set on its revision. When the entry moved on meanwhile, what stands wins,
with one exception: a `sent` we know of replaces an `interrupted` that another sender wrote
while we could not reach NATS (the truth beats the guess). If NATS does not take it within
`SETTLE_SECONDS`, `SettleLater` is raised; the result waits in the journal and is settled
by `settle_kept` once NATS is back, here or after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from wasched.common import ledger
from wasched.common.events import Outcome
from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.messages import ErrorKind, Status
from wasched.common.topology import ledger_key
from wasched.sender.journal import Journal, Kept

log = logging.getLogger("wasched.sender")
SETTLE_SECONDS = 15.0


class SettleLater(Exception):
    """NATS did not take the result in time; it is kept in the journal."""


class Records:
    def __init__(
        self,
        kv: KeyValue,
        journal: Journal,
        *,
        settle_seconds: float = SETTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self.journal = journal
        self._settle_seconds = settle_seconds
        self._clock = clock

    async def settle(self, kept: Kept) -> Outcome:
        """Journal the result, then write it over our claim; retried while NATS is away."""
        if self.journal.get(kept.id) is None:
            await self.journal.keep(kept)
        deadline = self._clock() + self._settle_seconds
        delay = 0.2
        while True:
            try:
                return await self.settle_kept(kept)
            except Exception as exc:
                if self._clock() + delay > deadline:
                    raise SettleLater(f"{kept.id}: the ledger is unreachable ({exc})") from None
                log.warning("recording %s in the ledger failed (%s); retrying", kept.id, exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def settle_kept(self, kept: Kept) -> Outcome:
        """One compare-and-set round: our result, or the verdict that stands instead."""
        mine = LedgerEntry.from_outcome(kept.outcome, kept.jid)
        key = ledger_key(kept.id)
        revision = kept.revision
        while True:
            try:
                await self._kv.update(key, mine.to_json(), last=revision)
                return kept.outcome
            except KeyWrongLastSequenceError:
                current = await ledger.read(self._kv, kept.id)
            if current is None:  # our claim vanished: record what we know
                recorded = await ledger.record_final(self._kv, kept.id, mine, any_gate=True)
                return kept.outcome if recorded is mine else recorded.outcome(kept.id)
            stands, revision = current
            if _same(stands, mine):
                return kept.outcome  # an earlier write landed; its answer was lost
            if kept.outcome.status is Status.SENT and _replaceable(stands):
                log.warning(
                    "%s: replacing %s with the send WhatsApp confirmed", kept.id, _name(stands)
                )
                continue  # compare-and-set over it on its revision
            if stands.is_final:
                log.warning("%s: the ledger was settled by someone else; keeping theirs", kept.id)
                return stands.outcome(kept.id)
            raise RuntimeError(f"{kept.id}: another sender holds the claim now ({stands.holder})")

    async def orphaned(
        self, message_id: str, entry: LedgerEntry, revision: int, outcome: Outcome
    ) -> bool:
        """Replace a claim whose holder is gone with `outcome` (interrupted); False if it moved."""
        final = LedgerEntry.from_outcome(outcome, entry.jid)
        try:
            await ledger.settle(self._kv, message_id, final, revision)
        except KeyWrongLastSequenceError:
            return False
        return True


def _same(stands: LedgerEntry, mine: LedgerEntry) -> bool:
    return (stands.state, stands.at, stands.wa_message_id) == (
        mine.state,
        mine.at,
        mine.wa_message_id,
    )


def _replaceable(stands: LedgerEntry) -> bool:
    """A claim, or the `interrupted` guessed for it: a confirmed send may replace either."""
    return stands.state is LedgerState.CLAIMED or (
        stands.state is LedgerState.FAILED and stands.error_kind is ErrorKind.INTERRUPTED
    )


def _name(entry: LedgerEntry) -> str:
    return "interrupted" if entry.error_kind is ErrorKind.INTERRUPTED else entry.state.value
