"""Is a number on WhatsApp, and under which JID: asked sparingly, remembered in NATS.

WhatsApp answers a lookup with the JID it knows the account by, which can differ from the
number as written (Mexican mobiles gain a 1 after 52, old Brazilian accounts lack the ninth
digit): messages go to that JID. Answers are kept in the `wasched-lookups` bucket, whose
entries expire after `LOOKUP_CACHE_SECONDS` and whose size is capped, so a restart does not
repeat them. Lookups themselves are paced and capped (`pace.next_lookup`), and a failing one
backs off, because bulk number checks are a ban signal of their own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from wasched.common.clock import utcnow
from wasched.common.recipients import Recipient, mask, parse_recipient
from wasched.common.topology import ledger_key
from wasched.sender import pace
from wasched.sender.account import Account
from wasched.sender.pace import Limits, Wait
from wasched.sender.transport import Transport, TransportError

log = logging.getLogger("wasched.sender.lookups")
CACHE_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Found:
    recipient: Recipient | None
    """Where to send (the JID WhatsApp answered), or None: not on WhatsApp."""


@dataclass(frozen=True, slots=True)
class LookupFailed:
    error: str
    retry_at: datetime


class Lookups:
    def __init__(
        self,
        cache: KeyValue,
        account: Account,
        transport: Transport,
        limits: Limits,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._cache = cache
        self._account = account
        self._transport = transport
        self._limits = limits
        self._clock = clock

    async def resolve(self, recipient: Recipient) -> Found | Wait | LookupFailed:
        if recipient.e164 is None:
            return Found(recipient)  # groups and other JIDs cannot be looked up
        cached = await self._cached(recipient)
        if cached is not None:
            return cached
        state = await self._account.pace()
        wait = pace.next_lookup(state, self._clock(), self._limits)
        if wait is not None:
            return wait
        try:
            answer = await self._transport.lookup(recipient)
        except TransportError as exc:
            state = await self._account.change(
                lambda s: pace.after_lookup(s, self._clock(), False, self._limits)
            )
            retry_at = state.lookup_retry_at or self._clock()
            log.warning(
                "looking up %s failed (%s); next try at %s", mask(recipient.user), exc, retry_at
            )
            return LookupFailed(str(exc), retry_at)
        await self._account.change(
            lambda s: pace.after_lookup(s, self._clock(), True, self._limits)
        )
        await self._remember(recipient, answer)
        return Found(answer)

    async def _cached(self, recipient: Recipient) -> Found | None:
        try:
            entry = await self._cache.get(ledger_key(recipient.user))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        try:
            jid = json.loads(entry.value or b"{}")["jid"]
            return Found(parse_recipient(jid) if jid else None)
        except (ValueError, KeyError, TypeError):
            return None

    async def _remember(self, recipient: Recipient, answer: Recipient | None) -> None:
        value = json.dumps({"jid": answer.jid if answer else None}).encode()
        try:
            await self._cache.put(ledger_key(recipient.user), value)
        except Exception as exc:  # a cache: the answer is used now, only not remembered
            log.warning("could not remember the lookup of %s: %s", mask(recipient.user), exc)
