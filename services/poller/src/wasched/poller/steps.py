"""Carry out the steps `plan` decided: ledger first, then NATS; outcomes to restore come back.

The ledger is written before anything is published, so that no sender can act on a
state the poller has moved past: a gate before a new version is handed over, a
verdict before its outcome is published. Every write checks the lease fence first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from nats.js.errors import KeyWrongLastSequenceError

from wasched.common import ledger
from wasched.common.clock import format_display
from wasched.common.events import Outcome, Receipt
from wasched.common.ledger import LedgerEntry, LedgerState, interrupted_outcome
from wasched.common.messages import Status
from wasched.common.recipients import mask
from wasched.poller.history import SeriesNote
from wasched.poller.plan import Action, Gate, Step
from wasched.poller.runtime import NATS_ERRORS, Runtime

log = logging.getLogger("wasched.poller")

Restore = Outcome | Receipt | SeriesNote
AT_ONCE = 32
_SETTLES = {Action.EXPIRE, Action.REJECT, Action.DUPLICATE}
_KEEPS_SCHEDULE = {Action.DISPATCH, Action.SCHEDULE, Action.WITHDRAW, Action.HOLD}


@dataclass(slots=True)
class Done:
    restores: list[Restore] = field(default_factory=list)
    """What the ledger knows that the document must show again."""
    failed: set[str] = field(default_factory=set)
    """Keys whose step could not be carried out (NATS): retried at the next poll or fire."""


class Executor:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def run(self, steps: list[Step]) -> Done:
        """Each id's steps in order; up to `AT_ONCE` ids at a time (10k due at once are 10k
        publishes, each awaiting its PubAck). A refusal of the lease or the term stops the
        run (every step checks the fence first) and is raised once all have stopped."""
        tally: Counter[str] = Counter()
        done = Done()
        by_key: dict[str, list[Step]] = {}
        for step in steps:
            if not _nothing_to_do(step, self.rt.book.schedules):
                by_key.setdefault(step.key, []).append(step)
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(key: str, mine: list[Step]) -> list[Restore]:
            found: list[Restore] = []
            async with gate:
                for step in mine:
                    try:
                        found += await self.perform(step, tally)
                    except NATS_ERRORS as exc:
                        done.failed.add(key)
                        log.warning("could not %s message %s: %r", step.action.value, key, exc)
            return found

        results = await asyncio.gather(
            *(one(k, mine) for k, mine in by_key.items()), return_exceptions=True
        )
        _log_tally(tally)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            done.restores += result
        return done

    async def perform(self, step: Step, tally: Counter[str]) -> list[Restore]:
        rt, key, action = self.rt, step.key, step.action
        if action is Action.HOLD:
            return []
        rt.fence.check()
        if step.gate is not None:
            standing = await self._gate(step)
            if standing is not None:
                return standing
        if key in rt.book.schedules and action not in _KEEPS_SCHEDULE:
            await rt.book.unschedule(key)
        if action is Action.DISPATCH:
            await self._dispatch(step, tally)
        elif action is Action.SCHEDULE:
            assert step.at is not None
            if rt.book.schedules.get(key) != step.at:
                await rt.book.schedule(step.due_message(), step.at)
                tally["scheduled"] += 1
        elif action in _SETTLES:
            return await self._settle(step, tally)
        elif action is Action.RESTORE:
            return [*(await self._restored(step)), *step.receipts]
        elif action is Action.NOTE:
            return [step.note] if step.note is not None else []
        elif action is Action.INTERRUPT:
            return await self._interrupt(step)
        elif action is Action.WITHDRAW:
            await self._withdraw(key)
        elif action is Action.CANCEL:
            winner = await ledger.cancel(rt.ledger, key)
            rt.book.forget(key)
            if winner.state is LedgerState.CANCELLED:
                tally["cancelled"] += 1
                log.info("message %s is gone or cancelled at its time; it will not be sent", key)
        elif action is Action.DROP:
            rt.book.forget(key)
        return []

    async def _gate(self, step: Step) -> list[Restore] | None:
        """Let only this version be claimed from now on. None: go on; a list: the id is
        claimed (the send began: its outcome says what went out) or settled (restore it)."""
        reopen = step.gate is Gate.REOPEN
        standing = await ledger.supersede(self.rt.ledger, step.key, step.version, reopen=reopen)
        if standing.state is LedgerState.SUPERSEDED and standing.version == step.version:
            self.rt.book.regated(step.key)
            what = "reopened" if reopen else "superseded its earlier hand-over"
            log.info("message %s changed: %s (version %s)", step.key, what, step.version)
            return None
        if standing.is_final:
            return [standing.outcome(step.key)]
        log.info("message %s changed while it was being sent; the outcome says what went", step.key)
        return []

    async def _restored(self, step: Step) -> list[Restore]:
        """The outcome to put back, read from the ledger: the poll's copy of a final entry
        is compact (`mirror`), without the WhatsApp id or the error text."""
        if step.outcome is None:
            return []
        found = await ledger.read(self.rt.ledger, step.key)
        if found is None or not found[0].is_final:
            return []  # changed meanwhile: the next poll decides again
        return [found[0].outcome(step.key)]

    async def _withdraw(self, key: str) -> None:
        """Gone from a readable document (or not pending): no hand-over may be claimed for
        now. Not final: if the message comes back, the gate moves to its version."""
        standing = await ledger.supersede(self.rt.ledger, key, None)
        if standing.state is LedgerState.SUPERSEDED:
            self.rt.book.regated(key)
            log.info("message %s was withdrawn after its hand-over; held back", key)
        else:
            self.rt.book.forget(key)

    async def _dispatch(self, step: Step, tally: Counter[str]) -> None:
        due = step.due_message()
        if await self.rt.book.dispatch(due):
            tally["dispatched"] += 1
            wall = format_display(due.scheduled_time, self.rt.settings.zone)
            where = self.rt.lane.due
            log.info("message %s for %s due %s → %s", step.key, mask(due.to), wall, where)

    async def _settle(self, step: Step, tally: Counter[str]) -> list[Restore]:
        """Record the poller's own verdict in the ledger first, so no sender can send it;
        it replaces any gate (no earlier hand-over of this message may go out either)."""
        outcome = step.outcome
        assert outcome is not None
        ours = LedgerEntry.from_outcome(outcome)
        winner = await ledger.record_final(self.rt.ledger, step.key, ours, any_gate=True)
        if winner != ours:
            return [winner.outcome(step.key)] if winner.is_final else []
        if step.message is not None:  # the status page shows the recipient, masked
            outcome = outcome.model_copy(update={"to": step.message.to})
        await self.publish_outcome(outcome)
        tally["expired" if outcome.status is Status.EXPIRED else "invalid"] += 1
        log.warning("message %s %s: %s", step.key, outcome.status.value, outcome.error)
        return []

    async def _interrupt(self, step: Step) -> list[Restore]:
        """A claim with no outcome for too long: `interrupted` in the ledger (compare-and-set
        on the claim, so a late settle wins) and then in the document."""
        found = await ledger.read(self.rt.ledger, step.key)
        if found is None:
            return []
        entry, revision = found
        if entry.state is not LedgerState.CLAIMED:
            return [entry.outcome(step.key)] if entry.is_final else []
        outcome = interrupted_outcome(step.key).model_copy(update={"version": entry.version})
        final = LedgerEntry.from_outcome(outcome, entry.jid)
        try:
            await ledger.settle(self.rt.ledger, step.key, final, revision)
        except KeyWrongLastSequenceError:
            return []  # settled meanwhile: the next poll restores whatever stands
        log.warning("message %s: %s", step.key, outcome.error)
        await self.publish_outcome(outcome)
        return []

    async def publish_outcome(self, outcome: Outcome) -> None:
        fence = self.rt.fence
        suffix = f":{outcome.version}" if outcome.version else ""
        headers = {
            **self.rt.lane.msg_id_header("outcome", f"{outcome.id}:{outcome.status.value}{suffix}"),
            **fence.headers(),
        }
        await fence.publish(
            self.rt.outputs.outcome.publish(outcome.to_json(), headers=headers, timeout=5.0)
        )


def _nothing_to_do(step: Step, schedules: dict[str, object]) -> bool:
    return step.action is Action.WAIT and step.gate is None and step.key not in schedules


def _log_tally(tally: Counter[str]) -> None:
    if tally["dispatched"]:
        log.info("dispatched %d due", tally["dispatched"])
    if tally["scheduled"]:
        log.info("scheduled %d for later", tally["scheduled"])
