"""The schedule object in S3: conditional reads, conflict-safe writes.

Reads send `If-None-Match` with the last ETag so an unchanged schedule costs no body.
A missing or empty object is not an empty schedule: it raises `DocumentError` like a
corrupt one, and nothing is written over it (except a first install's `create`).
Writes send `If-Match`; on 412 the caller's change (a function over the document,
applied by message key) is re-applied to a fresh read. Stores without conditional PUT
(Backblaze B2, or one that ignores `If-Match`) get merge mode: the change is applied to
a fresh read, the object is read again (conditionally) right before the PUT, and where
the bucket keeps object versions, a version another writer saved between our read and
our PUT is found afterwards and its changes re-applied (`document.reapply`).
Parsing, changing and rendering run in a thread: a 100k-message document must not
stall the caller's event loop. Only the parsed document is kept, not its bytes: a write
changes a working copy of it (`Document.working_copy`: changed messages are replaced, not
changed in place, so the cached copy that readers share stays as it was read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aioboto3

from wasched.common import storeprobe
from wasched.common.document import (
    Document,
    DocumentError,
    parse_document,
    reapply,
    render_document,
)
from wasched.common.s3calls import (
    Missing,
    NotModified,
    Precondition,
    S3Calls,
    StoreAuthError,
    StoreError,
    StoreStats,
    StoreUnavailable,
    Unsupported,
    decoded,
    encoded,
    s3_client_config,
)
from wasched.common.settings import Settings

__all__ = [
    "DocumentMissing",
    "ScheduleStore",
    "Snapshot",
    "StoreAuthError",
    "StoreConflict",
    "StoreError",
    "StoreStats",
    "StoreUnavailable",
    "open_store",
    "s3_client_config",
]

log = logging.getLogger("wasched.store")

MAX_WRITE_ATTEMPTS = 8
VERSIONS_LISTED = 100


class StoreConflict(StoreError):
    """Other writers kept winning; the change was not written (retry later)."""


class DocumentMissing(DocumentError):
    """The object does not exist: the schedule is unavailable, not empty."""


Mutation = Callable[[Document], bool]
"""Changes the document and says whether anything changed (idempotent). It may add, remove
and replace messages, but must not change a message dict in place (`apply_patches`,
`append_message` and `reapply` replace what they change): unchanged dicts are shared."""
Guard = Callable[[], Awaitable[None]]
"""Called right before every PUT; raises to stop it (the poller's lease fence)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    doc: Document
    etag: str | None
    changed: bool
    exists: bool = True
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Repair:
    base: Document
    theirs: bytes


class ScheduleStore:
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        self.conditional_writes = True
        self.versioning: bool | None = None
        """Merge mode only: whether the bucket keeps object versions (None: not known)."""
        self.guard: Guard | None = None
        self.stats = StoreStats()
        self._s3 = S3Calls(client, bucket, self.stats)
        self._etag: str | None = None
        self._doc: Document | None = None
        self._version_id: str | None = None
        self._encoding: str | None = None
        self._repairs: list[_Repair] = []

    @property
    def mode(self) -> str:
        return "conditional" if self.conditional_writes else "merge"

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def pending_repairs(self) -> int:
        return len(self._repairs)

    async def load(self) -> Snapshot:
        """Conditional GET. The returned document is shared: do not mutate it."""
        return await self._read()

    def cached(self) -> Snapshot | None:
        """The last document read or written, without asking S3 (shared: do not mutate)."""
        if self._doc is None:
            return None
        return Snapshot(self._doc, self._etag, False, True, self._version_id)

    async def update(self, mutate: Mutation, *, create: bool = False) -> Snapshot:
        """Apply `mutate` to a fresh read and write it without losing others' edits.

        `create`: a missing object is created (never over one that appeared meanwhile);
        otherwise a missing object raises `DocumentMissing` and nothing is written.
        """
        written: Snapshot | None = None
        for _ in range(MAX_WRITE_ATTEMPTS):
            snap = await self._fresh(create)
            doc = snap.doc.working_copy()
            repairs = list(self._repairs)
            repaired = await asyncio.to_thread(_reapply_all, repairs, doc)
            if not await asyncio.to_thread(mutate, doc) and not repaired:
                return written or snap
            result = await self._write(doc, snap)
            if result is None:
                self.stats.conflicts += 1
                log.info("schedule changed by another writer during our write; re-applying")
                continue
            written = result
            self._repairs = [r for r in self._repairs if r not in repairs]
            if not await self._overwritten(snap, result):
                return written
        raise StoreConflict(f"gave up after {MAX_WRITE_ATTEMPTS} conflicting writes")

    async def repair(self) -> None:
        """Write back what overwritten writers changed, if a repair is still pending."""
        if self._repairs:
            await self.update(lambda doc: False)

    async def exists(self, key: str) -> bool:
        """Whether the bucket holds `key` (a message's media): one HEAD request."""
        try:
            await self._s3("head_object", Key=key)
        except Missing:
            return False
        return True

    async def detect_conditional_writes(self) -> bool:
        """Probe whether the store enforces `If-Match` on PUT (else: merge mode, where the
        bucket's object versions are the safety net)."""
        enforced, how = await storeprobe.enforces_if_match(self._s3, f"{self.key}.wasched-probe")
        self.conditional_writes = enforced
        log.info("store mode: %s (%s)", self.mode, how)
        if not enforced:
            self.versioning = await storeprobe.keeps_versions(self._s3)
        return enforced

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> Snapshot:
        kwargs: dict[str, Any] = {"Key": self.key}
        if self._etag and self._doc is not None:
            kwargs["IfNoneMatch"] = self._etag
        try:
            response = await self._s3("get_object", **kwargs)
        except NotModified:
            self.stats.not_modified += 1
            assert self._doc is not None
            return Snapshot(self._doc, self._etag, False, True, self._version_id)
        except Missing:
            self._etag = self._doc = self._version_id = None
            raise DocumentMissing(f"{self.where} does not exist") from None
        raw = await self._s3.body(response)
        doc = await asyncio.to_thread(_parsed, raw, response.get("ContentEncoding"))
        del raw  # the cache keeps the last good copy, parsed; not its bytes
        self._etag, self._doc = response.get("ETag"), doc
        self._version_id = response.get("VersionId")
        self._encoding = response.get("ContentEncoding")
        return Snapshot(doc, self._etag, True, True, self._version_id)

    async def _fresh(self, create: bool) -> Snapshot:
        """A current read (an empty document that does not exist: no object, `create` only)."""
        try:
            return await self._read()
        except DocumentMissing:
            if not create:
                raise
            return Snapshot(Document(messages=[]), None, True, exists=False)

    # -- writing -------------------------------------------------------------------------------

    async def _write(self, doc: Document, read: Snapshot) -> Snapshot | None:
        """PUT `doc` unless the object changed since `read` (None: it did, start over)."""
        payload = await asyncio.to_thread(_rendered, doc, self._encoding if read.exists else None)
        kwargs: dict[str, Any] = {
            "Key": self.key,
            "Body": payload,
            "ContentType": "application/json",
        }
        if read.exists and self._encoding:
            kwargs["ContentEncoding"] = self._encoding
        if self.conditional_writes:
            if read.exists and read.etag:
                kwargs["IfMatch"] = read.etag
            else:
                kwargs["IfNoneMatch"] = "*"
        elif not await self._unchanged_since(read):
            return None
        if self.guard is not None:
            await self.guard()
        try:
            response = await self._s3("put_object", **kwargs)
        except Precondition:
            return None
        except Unsupported:
            log.warning("store rejected a conditional PUT; switching to merge mode")
            self.conditional_writes = False
            self.versioning = await storeprobe.keeps_versions(self._s3)
            return None
        self.stats.writes += 1
        self.stats.bytes_written += len(payload)
        self._etag, self._doc = response.get("ETag"), doc
        self._version_id = response.get("VersionId")
        return Snapshot(doc, self._etag, True, True, self._version_id)

    async def _unchanged_since(self, read: Snapshot) -> bool:
        """Merge mode: look again (conditional GET, no body if unchanged) right before the PUT."""
        try:
            again = await self._read()
        except DocumentMissing:
            return not read.exists
        return read.exists and not again.changed

    async def _overwritten(self, read: Snapshot, ours: Snapshot) -> bool:
        """Merge mode with versions: did our PUT bury a version written after our read?

        If so, its changes are queued for re-application (True: the caller writes again).
        """
        if self.conditional_writes or not self.versioning or not read.exists:
            return False
        if read.version_id is None or ours.version_id is None:
            return False
        between = await self._versions_between(read.version_id, ours.version_id)
        if not between:
            return False
        theirs = await self._version_body(between[0])
        self._repairs.append(_Repair(read.doc, theirs))
        self.stats.repairs += len(between)
        log.warning(
            "another writer saved %s between our read and our write; re-applied their changes",
            "a version" if len(between) == 1 else f"{len(between)} versions",
        )
        return True

    async def _versions_between(self, base: str, ours: str) -> list[str]:
        """Version ids written after `base` and before `ours`, newest first."""
        listed = await self._s3("list_object_versions", Prefix=self.key, MaxKeys=VERSIONS_LISTED)
        ids = [v["VersionId"] for v in listed.get("Versions", []) if v.get("Key") == self.key]
        if ours not in ids or base not in ids[ids.index(ours) :]:
            log.warning("could not find our write among the object's versions; not repairing")
            return []
        return ids[ids.index(ours) + 1 : ids.index(base)]

    async def _version_body(self, version_id: str) -> bytes:
        response = await self._s3("get_object", Key=self.key, VersionId=version_id)
        raw = await self._s3.body(response)
        return await asyncio.to_thread(decoded, raw, response.get("ContentEncoding"))


def _parsed(raw: bytes, encoding: str | None) -> Document:
    return parse_document(decoded(raw, encoding))


def _rendered(doc: Document, encoding: str | None) -> bytes:
    return encoded(render_document(doc), encoding)


def _reapply_all(repairs: list[_Repair], doc: Document) -> bool:
    changed = False
    for repair in repairs:
        changed |= reapply(repair.base, parse_document(repair.theirs), doc)
    return changed


@asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[Any]:
    """An S3 client for `settings` (the schedule's store, media uploads and fetches)."""
    key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    async with aioboto3.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=s3_client_config(),
    ) as client:
        yield client


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[ScheduleStore]:
    """The store for `settings`; the client closes when the block ends."""
    async with s3_client(settings) as client:
        yield ScheduleStore(client, settings.s3_bucket, settings.document_key)
