"""The send ledger: one JetStream KV entry per message id, changed only by compare-and-set.

It is the truth about what was handed to WhatsApp. `claim` wins for exactly
one caller; an entry left at `claimed` means the outcome is unknown and the id
must never be sent again.

Before a claim, the poller may gate an id with a `superseded` entry: the message
it handed over has changed (or was withdrawn), and only the version the entry
names may be claimed (none when it names none). A gate is not final: the poller
moves it as the document changes, and a claim of the named version replaces it.
A final verdict that nothing was sent for (a rejection, an expiry) may be
reopened the same way when the user corrects the message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from nats.js.errors import (
    APIError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, Field

from wasched.common.clock import utcnow
from wasched.common.events import Event, Outcome
from wasched.common.messages import ErrorKind, Status
from wasched.common.topology import ledger_key

log = logging.getLogger("wasched.ledger")


class LedgerState(StrEnum):
    CLAIMED = "claimed"
    SUPERSEDED = "superseded"
    """Not final: only `version` (if any) may be claimed; the poller moves it."""
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class LedgerEntry(Event):
    state: LedgerState
    at: AwareDatetime = Field(default_factory=utcnow)
    sent_at: AwareDatetime | None = None
    wa_message_id: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    jid: str | None = None
    version: str | None = None
    """claimed/final: the content version handed over or judged; superseded: the one version
    that may be claimed now (None: none may)."""
    holder: str | None = None
    """claimed: the sender instance that holds the claim."""
    delivered_at: AwareDatetime | None = None
    read_at: AwareDatetime | None = None
    """sent: receipt times, recorded by the poller so that a wiped document gets them back."""

    @property
    def is_final(self) -> bool:
        return self.state not in _OPEN

    def allows(self, version: str | None) -> bool:
        """A `superseded` gate that lets this version be claimed."""
        return (
            self.state is LedgerState.SUPERSEDED and version is not None and self.version == version
        )

    @property
    def reopenable(self) -> bool:
        """Final, but nothing was handed to WhatsApp: a corrected message may be sent."""
        if self.state is LedgerState.EXPIRED:
            return True
        return self.state is LedgerState.FAILED and self.error_kind in _REJECTIONS

    def outcome(self, message_id: str) -> Outcome:
        """The outcome this entry records (a bare claim means `interrupted`)."""
        if self.state is LedgerState.SUPERSEDED:
            raise ValueError(f"{message_id}: a superseded gate records no outcome")
        if self.state is LedgerState.CLAIMED:
            return interrupted_outcome(message_id)
        return Outcome(
            id=message_id,
            status=Status(self.state.value),
            at=self.at,
            sent_at=self.sent_at,
            wa_message_id=self.wa_message_id,
            error=self.error,
            error_kind=self.error_kind,
            version=self.version,
        )

    @classmethod
    def from_outcome(cls, outcome: Outcome, jid: str | None = None) -> LedgerEntry:
        return cls(
            state=LedgerState(outcome.status.value),
            at=outcome.at,
            sent_at=outcome.sent_at,
            wa_message_id=outcome.wa_message_id,
            error=outcome.error,
            error_kind=outcome.error_kind,
            jid=jid,
            version=outcome.version,
        )


_OPEN = frozenset({LedgerState.CLAIMED, LedgerState.SUPERSEDED})
_REJECTIONS = frozenset(
    {
        ErrorKind.VALIDATION,
        ErrorKind.INVALID_RECIPIENT,
        ErrorKind.NOT_ON_WHATSAPP,
        ErrorKind.EXPIRED,
        ErrorKind.MEDIA_UNAVAILABLE,
        ErrorKind.MEDIA_TOO_LARGE,
        ErrorKind.MEDIA_TYPE,
    }
)


def interrupted_outcome(message_id: str) -> Outcome:
    return Outcome(
        id=message_id,
        status=Status.FAILED,
        error_kind=ErrorKind.INTERRUPTED,
        error=(
            "the send was interrupted (crash or timeout) after it was handed to WhatsApp; "
            "it may or may not have been delivered, so it is not retried automatically"
        ),
    )


@dataclass(frozen=True, slots=True)
class Claim:
    won: bool
    revision: int
    entry: LedgerEntry


async def read(kv: KeyValue, message_id: str) -> tuple[LedgerEntry, int] | None:
    try:
        got = await kv.get(ledger_key(message_id))
    except (KeyNotFoundError, KeyDeletedError):
        return None
    if got.value is None:
        return None
    return LedgerEntry.model_validate_json(got.value), got.revision or 0


async def claim(
    kv: KeyValue,
    message_id: str,
    jid: str | None = None,
    *,
    version: str | None = None,
    holder: str | None = None,
) -> Claim:
    """Create the entry, or replace a gate that allows `version`; exactly one caller wins.

    Losers get the entry that exists: a claim or final verdict, or a `superseded` gate that
    does not allow their version (what they hold is out of date: send nothing).
    """
    entry = LedgerEntry(state=LedgerState.CLAIMED, jid=jid, version=version, holder=holder)
    key = ledger_key(message_id)
    while True:
        try:
            return Claim(won=True, revision=await kv.create(key, entry.to_json()), entry=entry)
        except KeyWrongLastSequenceError:
            existing = await read(kv, message_id)
        if existing is None:  # deleted between our create and read: try again
            continue
        current, revision = existing
        if not current.allows(version):
            return Claim(won=False, revision=revision, entry=current)
        try:
            revision = await kv.update(key, entry.to_json(), last=revision)
        except KeyWrongLastSequenceError:
            continue  # the gate moved meanwhile: look again
        return Claim(won=True, revision=revision, entry=entry)


async def supersede(
    kv: KeyValue, message_id: str, version: str | None, *, reopen: bool = False
) -> LedgerEntry:
    """Gate an id so that only `version` may be claimed (None: nothing may, for now).

    For an id the poller handed over and whose message then changed or was withdrawn. With
    `reopen`, a final verdict for which nothing was sent (`reopenable`) of another version
    is replaced too. An id already claimed or settled otherwise is left as it is; the entry
    that stands is returned (the caller compares its state).
    """
    gate = LedgerEntry(state=LedgerState.SUPERSEDED, version=version)
    key = ledger_key(message_id)
    while True:
        existing = await read(kv, message_id)
        if existing is None:
            try:
                await kv.create(key, gate.to_json())
            except KeyWrongLastSequenceError:
                continue
            return gate
        current, revision = existing
        movable = current.state is LedgerState.SUPERSEDED or (
            reopen and current.reopenable and current.version != version
        )
        if not movable or (current.state is LedgerState.SUPERSEDED and current.version == version):
            return current
        try:
            await kv.update(key, gate.to_json(), last=revision)
        except KeyWrongLastSequenceError:
            continue
        return gate


async def settle(kv: KeyValue, message_id: str, entry: LedgerEntry, revision: int) -> int:
    """Replace our claim with the final entry (compare-and-set on the claim's revision)."""
    return await kv.update(ledger_key(message_id), entry.to_json(), last=revision)


async def release(kv: KeyValue, message_id: str, revision: int) -> bool:
    """Withdraw our claim when the send certainly never left (e.g. WhatsApp not connected).

    Only for errors raised before anything was handed to WhatsApp; compare-and-set
    on the claim's revision, so an entry someone else changed is kept (False).
    """
    return await _delete_if_unchanged(kv, message_id, revision)


async def _delete_if_unchanged(kv: KeyValue, message_id: str, revision: int) -> bool:
    """`kv.delete(last=)`: False when the entry moved on. nats-py raises `BadRequestError`
    (code 10071) here, not the `KeyWrongLastSequenceError` that `update` raises."""
    try:
        await kv.delete(ledger_key(message_id), last=revision)
    except KeyWrongLastSequenceError:
        return False
    except APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            return False
        raise
    return True


_WRONG_LAST_SEQUENCE = (10071, 10164)
"""JSStreamWrongLastSequenceErrF, JSStreamWrongLastSequenceConstantErr (nats-server)."""


async def record_final(
    kv: KeyValue, message_id: str, entry: LedgerEntry, *, any_gate: bool = False
) -> LedgerEntry:
    """Record a final state for an unclaimed id; if one exists already, it wins and is returned.

    A `superseded` gate is replaced when it allows `entry.version` (the verdict is about the
    version that may be sent), or always with `any_gate` (an explicit cancellation).
    """
    key = ledger_key(message_id)
    while True:
        try:
            await kv.create(key, entry.to_json())
        except KeyWrongLastSequenceError:
            existing = await read(kv, message_id)
        else:
            return entry
        if existing is None:
            continue
        current, revision = existing
        if current.state is not LedgerState.SUPERSEDED or not (
            any_gate or current.allows(entry.version)
        ):
            return current
        try:
            await kv.update(key, entry.to_json(), last=revision)
        except KeyWrongLastSequenceError:
            continue
        return entry


async def cancel(kv: KeyValue, message_id: str) -> LedgerEntry:
    """Mark an id cancelled unless it was already claimed or settled (that entry is returned)."""
    return await record_final(
        kv, message_id, LedgerEntry(state=LedgerState.CANCELLED), any_gate=True
    )


async def uncancel(kv: KeyValue, message_id: str) -> bool:
    """Remove a cancellation (the message is pending again); never touches other states."""
    existing = await read(kv, message_id)
    if existing is None or existing[0].state is not LedgerState.CANCELLED:
        return existing is None
    return await _delete_if_unchanged(kv, message_id, existing[1])
