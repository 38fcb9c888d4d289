"""The WhatsApp account's safety state in NATS KV (`wasched-account`), so that no restart,
crash loop or second sender instance can forget it.

`pace` holds the `PaceState` (recent sends and lookups, the last ban, recent texts) and is
changed by compare-and-set; `replaced` marks that another client took the session, so a
restarted sender does not take it back until an operator says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from wasched.common.clock import format_utc, utcnow
from wasched.common.topology import ACCOUNT_PACE_KEY, ACCOUNT_REPLACED_KEY
from wasched.sender.pace import PaceState

log = logging.getLogger("wasched.sender.account")
PEEK_SECONDS = 2.0


class Account:
    def __init__(self, kv: KeyValue, clock: Callable[[], float] = time.monotonic) -> None:
        self._kv = kv
        self._clock = clock
        self._cached = PaceState()
        self._read_at = float("-inf")

    async def pace(self) -> PaceState:
        """The stored pace, read now."""
        state, _ = await self._read()
        return state

    async def peek(self) -> PaceState:
        """A recent copy (at most PEEK_SECONDS old) for the fetch loop; NATS errors keep the last."""
        if self._clock() - self._read_at >= PEEK_SECONDS:
            try:
                await self._read()
            except Exception as exc:
                log.debug("reading the pace failed: %s", exc)
        return self._cached

    async def change(self, update: Callable[[PaceState], PaceState]) -> PaceState:
        """Apply `update` to the stored pace (compare-and-set; retried when another wrote first)."""
        while True:
            state, revision = await self._read()
            changed = update(state)
            try:
                if revision is None:
                    await self._kv.create(ACCOUNT_PACE_KEY, changed.to_json())
                else:
                    await self._kv.update(ACCOUNT_PACE_KEY, changed.to_json(), last=revision)
            except KeyWrongLastSequenceError:
                continue
            self._cached, self._read_at = changed, self._clock()
            return changed

    async def replaced(self) -> str | None:
        """When another client took the session, if that still stands."""
        try:
            entry = await self._kv.get(ACCOUNT_REPLACED_KEY)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return entry.value.decode() if entry.value else None

    async def mark_replaced(self) -> None:
        await self._kv.put(ACCOUNT_REPLACED_KEY, format_utc(utcnow()).encode())

    async def clear_replaced(self) -> None:
        try:
            await self._kv.delete(ACCOUNT_REPLACED_KEY)
        except (KeyNotFoundError, KeyDeletedError):
            return

    async def _read(self) -> tuple[PaceState, int | None]:
        try:
            entry = await self._kv.get(ACCOUNT_PACE_KEY)
        except (KeyNotFoundError, KeyDeletedError):
            state, revision = PaceState(), None
        else:
            revision = entry.revision
            try:
                state = PaceState.model_validate_json(entry.value or b"{}")
            except ValidationError:
                log.warning("the stored pace is unreadable; starting a new history")
                state = PaceState()
        self._cached, self._read_at = state, self._clock()
        return state, revision
