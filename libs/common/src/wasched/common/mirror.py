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
only on those again.

The copy is loaded in batches (a pull consumer on the bucket's stream, the last entry of
each key: memory bounded by a batch, where a KV watch buffers every entry not handed
over yet), then follows every change after the last one loaded, in order. It is loaded
again every `resync_seconds`, which also heals it after a NATS restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable
from datetime import datetime

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from wasched.common.ledger import LedgerEntry, LedgerState
from wasched.common.recurrence import parse_occurrence_id
from wasched.common.topology import LEDGER_BUCKET, ledger_key, ledger_message_id

log = logging.getLogger("wasched.ledger")

BATCH = 1000
KEPT = ("state", "at", "version", "errorKind", "deliveredAt", "readAt")
"""The fields of a final entry the poll decides on."""
_OPEN = frozenset({LedgerState.CLAIMED.value, LedgerState.SUPERSEDED.value})
_STATES = frozenset(s.value for s in LedgerState)
_GONE = frozenset({"DEL", "PURGE"})
_MARKERS = frozenset({"MaxAge", "Purge", "Remove"})
"""`Nats-Marker-Reason`s of server-placed markers (nats-server 2.11+): the key is gone."""


class LedgerMirror:
    def __init__(
        self, js: JetStreamContext, resync_seconds: float = 300.0, bucket: str = LEDGER_BUCKET
    ) -> None:
        self._js = js
        self._stream, self._prefix = f"KV_{bucket}", f"$KV.{bucket}."
        self._resync = resync_seconds
        self._entries = _Entries()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.loaded_at: float | None = None
        self.changed: set[str] = set()
        """Message ids whose entry changed since the last `take_changed`."""
        self._revision = self._size = 0
        self._sized = (0, -1)

    def get(self, message_id: str) -> LedgerEntry | None:
        """The entry (a final one compact: no WhatsApp id, error text or recipient)."""
        return self._get_key(ledger_key(message_id))

    def view(self, message_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        return {i: e for i in message_ids if (e := self.get(i)) is not None}

    def occurrences(self, series_id: str) -> dict[datetime, LedgerEntry]:
        """The entries of a repeating message's occurrences, by occurrence instant (safe to
        call from the poll's thread: the index is copied in one step before it is read)."""
        keys = dict(self._entries.series.get(series_id, {}))
        return {at: e for at, key in keys.items() if (e := self._get_key(key)) is not None}

    def _get_key(self, key: str) -> LedgerEntry | None:
        value = self._entries.get(key)
        return _parsed(value) if value is not None else None

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
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: keep the last copy, try again soon
                log.warning("ledger watch interrupted (%r); rebuilding", exc)
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        """Load the copy, then apply every change after it, in order, until the resync."""
        fresh, last = await self._load()
        if self.loaded_at is not None:  # a first copy changes nothing: the first poll decides all
            self.changed |= _differences(self._entries, fresh)
        self._entries = fresh
        self._revision += 1
        loop = asyncio.get_running_loop()
        self.loaded_at = loop.time()
        self._ready.set()
        deadline = loop.time() + self._resync
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        sub = await self._js.subscribe(
            f"{self._prefix}>",
            stream=self._stream,
            cb=queue.put,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=last + 1
            ),
            inactive_threshold=60.0,
        )
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        msg = await queue.get()
                except TimeoutError:
                    break
                key = msg.subject.removeprefix(self._prefix)
                if _apply(self._entries, key, msg):
                    self.changed.add(ledger_message_id(key))
                    self._revision += 1
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _load(self) -> tuple[_Entries, int]:
        """Every key's last entry, a batch at a time, and the last stream sequence seen (what
        changed after it comes again, in order, to `_follow`)."""
        last = 0
        entries = _Entries()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=30.0,
        )
        sub = await self._js.pull_subscribe(f"{self._prefix}>", stream=self._stream, config=config)
        try:
            remaining = (await sub.consumer_info()).num_pending or 0
            while remaining > 0:
                batch = await sub.fetch(min(BATCH, remaining), timeout=5)
                for msg in batch:
                    _apply(entries, msg.subject.removeprefix(self._prefix), msg)
                    last = max(last, msg.metadata.sequence.stream)
                remaining = batch[-1].metadata.num_pending if batch else 0
        finally:
            with contextlib.suppress(Exception):
                name = (await sub.consumer_info()).name
                await sub.unsubscribe()
                await self._js.delete_consumer(self._stream, name)
        return entries, last


class _Entries(dict[str, bytes]):
    """Stored entries by ledger key; the keys of series' occurrences also by series id and
    instant, so a poll finds a series' occurrences without scanning every key."""

    def __init__(self) -> None:
        super().__init__()
        self.series: dict[str, dict[datetime, str]] = {}

    def put(self, key: str, value: bytes) -> None:
        self[key] = value
        if (found := _occurrence(key)) is not None:
            self.series.setdefault(found[0], {})[found[1]] = key

    def drop(self, key: str) -> bool:
        if self.pop(key, None) is None:
            return False
        if (found := _occurrence(key)) is not None and found[0] in self.series:
            owned = self.series[found[0]]
            owned.pop(found[1], None)
            if not owned:
                del self.series[found[0]]
        return True


def _occurrence(key: str) -> tuple[str, datetime] | None:
    """(series id, instant) of an occurrence's ledger key (always hex: `@` is not a key
    character), else None."""
    if not key.startswith("h."):
        return None
    try:
        return parse_occurrence_id(bytes.fromhex(key[2:]).decode())
    except (ValueError, UnicodeDecodeError):
        return None


def _apply(entries: _Entries, key: str, msg: Msg) -> bool:
    """Keep the entry (compact when final); True when the copy changed."""
    headers = msg.headers or {}
    gone = headers.get("KV-Operation") in _GONE or headers.get("Nats-Marker-Reason") in _MARKERS
    if gone or not msg.data:
        return entries.drop(key)
    value = compact(msg.data)
    if value is None:
        log.warning("ledger entry %s is unreadable; ignored", key)
        return False
    if entries.get(key) == value:
        return False
    entries.put(key, value)
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
        small = orjson.dumps({k: data[k] for k in KEPT if data.get(k) is not None})
        kept = bytes(memoryview(small))  # orjson's bytes keep a 4 KB buffer: copy to size
    try:
        LedgerEntry.model_validate_json(kept)
    except ValueError:
        return None
    return kept


@functools.lru_cache(maxsize=1024)
def _parsed(value: bytes) -> LedgerEntry | None:
    """Parsed once for entries read again and again (claims in flight, gates)."""
    try:
        return LedgerEntry.model_validate_json(value)
    except ValueError:
        return None


def _differences(old: dict[str, bytes], new: dict[str, bytes]) -> set[str]:
    """The message ids whose entry differs between two copies (after a reload)."""
    keys = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    return {ledger_message_id(k) for k in keys}
