"""The poller's live copy of the send ledger, fed by a KV watch, kept small.

A poll of 100k pending messages must not cost 100k KV reads. The copy may lag by
milliseconds, so it serves only decisions that tolerate that (the periodic poll: the
sender's claim still guards every send); paths that need the latest entry (an outcome
to vouch for, a fired schedule, an outcome to restore) use `ledger.read`.

A year of use leaves 100k final entries: parsed, each costs ~1.3 KB; stored as read,
~0.3 KB with its key. Final entries are kept in a compact form: only what a poll decides
on (state, time, version, error kind, receipt times), ~0.2 KB with its key; the details
of an outcome (WhatsApp id, error text, recipient) are read from the ledger when an
outcome is restored. Entries still in play (`claimed`, `superseded`) are kept whole.
The ids whose entry changed are collected for the poll (`take_changed`), which decides
only on those again. The watch is rebuilt every `resync_seconds`, which also heals it
after a NATS restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable

import orjson
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.kv import KeyValue

from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.topology import ledger_key, ledger_message_id

log = logging.getLogger("wasched.ledger")

KEPT = ("state", "at", "version", "errorKind", "deliveredAt", "readAt")
"""The fields of a final entry the poll decides on."""
_OPEN = frozenset({LedgerState.CLAIMED.value, LedgerState.SUPERSEDED.value})
_STATES = frozenset(s.value for s in LedgerState)


class LedgerMirror:
    def __init__(self, kv: KeyValue, resync_seconds: float = 300.0) -> None:
        self._kv = kv
        self._resync = resync_seconds
        self._entries: dict[str, bytes] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.loaded_at: float | None = None
        self.changed: set[str] = set()
        """Message ids whose entry changed since the last `take_changed`."""
        self._revision = self._size = 0
        self._sized = (0, -1)

    def get(self, message_id: str) -> LedgerEntry | None:
        """The entry (a final one compact: no WhatsApp id, error text or recipient)."""
        value = self._entries.get(ledger_key(message_id))
        return _parsed(value) if value is not None else None

    def view(self, message_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        return {i: e for i in message_ids if (e := self.get(i)) is not None}

    def take_changed(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def stored_bytes(self) -> int:
        """The entries' stored values, in bytes (what the copy holds besides its keys)."""
        if self._sized != (id(self._entries), self._revision):
            self._size = sum(len(v) for v in self._entries.values())
            self._sized = (id(self._entries), self._revision)
        return self._size

    async def start(self, timeout: float = 60.0) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-mirror")
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: keep the last copy, try again soon
                log.warning("ledger watch interrupted (%r); rebuilding", exc)
                await asyncio.sleep(1.0)

    async def _watch_once(self) -> None:
        watcher = await self._kv.watchall()
        fresh: dict[str, bytes] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._resync
        initial = True
        try:
            while loop.time() < deadline:
                try:
                    entry = await watcher.updates(timeout=max(0.1, deadline - loop.time()))
                except (TimeoutError, NatsTimeoutError):
                    break
                if not (entry is None or isinstance(entry, KeyValue.Entry)):
                    break  # the watcher was stopped
                if entry is None:  # end of the initial values
                    if initial:
                        self.changed |= _differences(self._entries, fresh)
                        self._entries, initial = fresh, False
                        self._revision += 1
                        self.loaded_at = loop.time()
                        self._ready.set()
                    continue
                if initial:
                    _apply(fresh, entry)
                elif _apply(self._entries, entry):
                    self.changed.add(ledger_message_id(entry.key))
                    self._revision += 1
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()


def _apply(entries: dict[str, bytes], entry: KeyValue.Entry) -> bool:
    """Keep the entry (compact when final); True when the copy changed."""
    if entry.operation in ("DEL", "PURGE") or not entry.value:
        return entries.pop(entry.key, None) is not None
    value = compact(entry.value)
    if value is None:
        log.warning("ledger entry %s is unreadable; ignored", entry.key)
        return False
    if entries.get(entry.key) == value:
        return False
    entries[entry.key] = value
    return True


def compact(value: bytes) -> bytes | None:
    """What the mirror keeps of a stored entry (None: not a ledger entry)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("state") not in _STATES:
        return None
    if data["state"] in _OPEN:
        kept = bytes(value)
    else:
        kept = orjson.dumps({k: data[k] for k in KEPT if data.get(k) is not None})
    return kept if _parsed(kept) is not None else None


@functools.lru_cache(maxsize=4096)
def _parsed(value: bytes) -> LedgerEntry | None:
    """Parsed once for entries read again and again (claims in flight, gates)."""
    try:
        return LedgerEntry.model_validate_json(value)
    except ValueError:
        return None


def _differences(old: dict[str, bytes], new: dict[str, bytes]) -> set[str]:
    """The message ids whose entry differs between two copies (after a resync)."""
    keys = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    return {ledger_message_id(k) for k in keys}
