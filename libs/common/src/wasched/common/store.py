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
stall the caller's event loop.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from wasched.common.document import (
    Document,
    DocumentError,
    parse_document,
    reapply,
    render_document,
)
from wasched.common.settings import Settings

log = logging.getLogger("wasched.store")

MAX_WRITE_ATTEMPTS = 8
VERSIONS_LISTED = 100
WRONG_ETAG = '"00000000000000000000000000000000"'
_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "403",
    "InvalidToken",
    "ExpiredToken",
    "Unauthorized",
    "401",
}
_MISSING_BUCKET = {"NoSuchBucket"}
_NOT_IMPLEMENTED = {"NotImplemented", "501"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class StoreError(Exception):
    """Base for schedule-store failures."""


class StoreAuthError(StoreError):
    """Credentials or bucket are wrong: fatal, retrying cannot help."""


class StoreUnavailable(StoreError):
    """Network or server trouble: retry later."""


class StoreConflict(StoreError):
    """Other writers kept winning; the change was not written (retry later)."""


class DocumentMissing(DocumentError):
    """The object does not exist: the schedule is unavailable, not empty."""


Mutation = Callable[[Document], bool]
"""Changes the document in place and says whether anything changed (idempotent)."""
Guard = Callable[[], Awaitable[None]]
"""Called right before every PUT; raises to stop it (the poller's lease fence)."""


@dataclass(slots=True)
class StoreStats:
    requests: int = 0
    bodies_read: int = 0
    bytes_downloaded: int = 0
    not_modified: int = 0
    writes: int = 0
    conflicts: int = 0
    repairs: int = 0
    """Other writers' versions that a blind PUT overwrote and whose changes were put back."""
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    doc: Document
    etag: str | None
    changed: bool
    exists: bool = True
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Repair:
    base: bytes
    theirs: bytes


class ScheduleStore:
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self.conditional_writes = True
        self.versioning: bool | None = None
        """Merge mode only: whether the bucket keeps object versions (None: not known)."""
        self.guard: Guard | None = None
        self.stats = StoreStats()
        self._etag: str | None = None
        self._body: bytes | None = None
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
            snap, base = await self._fresh(create)
            doc = await asyncio.to_thread(_working_copy, base)
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
            if not await self._overwritten(snap, result, base):
                return written
        raise StoreConflict(f"gave up after {MAX_WRITE_ATTEMPTS} conflicting writes")

    async def repair(self) -> None:
        """Write back what overwritten writers changed, if a repair is still pending."""
        if self._repairs:
            await self.update(lambda doc: False)

    async def detect_conditional_writes(self) -> bool:
        """Probe with a scratch object whether the store enforces `If-Match` on PUT.

        B2 answers NotImplemented; a store that ignores the condition accepts a PUT with a
        wrong ETag. Either means merge mode, where object versions are the safety net.
        """
        probe = f"{self.key}.wasched-probe"
        created: list[str | None] = []
        verdict = "If-Match writes"
        try:
            first = await self._call("put_object", Bucket=self.bucket, Key=probe, Body=b"probe")
            created.append(first.get("VersionId"))
            try:
                again = await self._call(
                    "put_object", Bucket=self.bucket, Key=probe, Body=b"probe", IfMatch=WRONG_ETAG
                )
                created.append(again.get("VersionId"))
                self.conditional_writes = False
                verdict = "the store ignored If-Match on PUT; re-read-merge-write instead"
            except _Precondition:
                self.conditional_writes = True
            except _NotImplemented:
                self.conditional_writes = False
                verdict = "the store rejects conditional PUT; re-read-merge-write instead"
        finally:
            await self._delete_probe(probe, created)
        log.info("store mode: %s (%s)", self.mode, verdict)
        if not self.conditional_writes:
            await self._detect_versioning()
        return self.conditional_writes

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> Snapshot:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self._etag and self._doc is not None:
            kwargs["IfNoneMatch"] = self._etag
        try:
            response = await self._call("get_object", **kwargs)
        except _NotModified:
            self.stats.not_modified += 1
            assert self._doc is not None
            return Snapshot(self._doc, self._etag, False, True, self._version_id)
        except _Missing:
            self._etag = self._body = self._doc = self._version_id = None
            raise DocumentMissing(f"{self.where} does not exist") from None
        raw = await self._body_of(response)
        body = await asyncio.to_thread(_decoded, raw, response.get("ContentEncoding"))
        doc = await asyncio.to_thread(parse_document, body)  # the cache keeps the last good copy
        self._etag, self._body, self._doc = response.get("ETag"), body, doc
        self._version_id = response.get("VersionId")
        self._encoding = response.get("ContentEncoding")
        return Snapshot(doc, self._etag, True, True, self._version_id)

    async def _fresh(self, create: bool) -> tuple[Snapshot, bytes | None]:
        """A current read and the body it was parsed from (None: no object, `create` only)."""
        try:
            snap = await self._read()
        except DocumentMissing:
            if not create:
                raise
            return Snapshot(Document(messages=[]), None, True, exists=False), None
        return snap, self._body

    async def _body_of(self, response: Any) -> bytes:
        async with response["Body"] as stream:
            body = bytes(await stream.read())
        self.stats.bodies_read += 1
        self.stats.bytes_downloaded += len(body)
        return body

    # -- writing -------------------------------------------------------------------------------

    async def _write(self, doc: Document, read: Snapshot) -> Snapshot | None:
        """PUT `doc` unless the object changed since `read` (None: it did, start over)."""
        body = await asyncio.to_thread(render_document, doc)
        payload = await asyncio.to_thread(_encoded, body, self._encoding if read.exists else None)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
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
            response = await self._call("put_object", **kwargs)
        except _Precondition:
            return None
        except _NotImplemented:
            log.warning("store rejected a conditional PUT; switching to merge mode")
            self.conditional_writes = False
            await self._detect_versioning()
            return None
        self.stats.writes += 1
        self._etag, self._body, self._doc = response.get("ETag"), body, doc
        self._version_id = response.get("VersionId")
        return Snapshot(doc, self._etag, True, True, self._version_id)

    async def _unchanged_since(self, read: Snapshot) -> bool:
        """Merge mode: look again (conditional GET, no body if unchanged) right before the PUT."""
        try:
            again = await self._read()
        except DocumentMissing:
            return not read.exists
        return read.exists and not again.changed

    async def _overwritten(self, read: Snapshot, ours: Snapshot, base: bytes | None) -> bool:
        """Merge mode with versions: did our PUT bury a version written after our read?

        If so, its changes are queued for re-application (True: the caller writes again).
        """
        if self.conditional_writes or not self.versioning or base is None:
            return False
        if read.version_id is None or ours.version_id is None:
            return False
        between = await self._versions_between(read.version_id, ours.version_id)
        if not between:
            return False
        theirs = await self._version_body(between[0])
        self._repairs.append(_Repair(base, theirs))
        self.stats.repairs += len(between)
        log.warning(
            "another writer saved %s between our read and our write; re-applied their changes",
            "a version" if len(between) == 1 else f"{len(between)} versions",
        )
        return True

    async def _versions_between(self, base: str, ours: str) -> list[str]:
        """Version ids written after `base` and before `ours`, newest first."""
        listed = await self._call(
            "list_object_versions", Bucket=self.bucket, Prefix=self.key, MaxKeys=VERSIONS_LISTED
        )
        ids = [v["VersionId"] for v in listed.get("Versions", []) if v.get("Key") == self.key]
        if ours not in ids or base not in ids[ids.index(ours) :]:
            log.warning("could not find our write among the object's versions; not repairing")
            return []
        return ids[ids.index(ours) + 1 : ids.index(base)]

    async def _version_body(self, version_id: str) -> bytes:
        response = await self._call(
            "get_object", Bucket=self.bucket, Key=self.key, VersionId=version_id
        )
        raw = await self._body_of(response)
        return await asyncio.to_thread(_decoded, raw, response.get("ContentEncoding"))

    # -- start-up ------------------------------------------------------------------------------

    async def _detect_versioning(self) -> None:
        try:
            answer = await self._call("get_bucket_versioning", Bucket=self.bucket)
        except (StoreUnavailable, StoreAuthError, _Signal) as exc:
            self.versioning = None
            log.warning(
                "could not tell whether bucket %r keeps object versions (%s); in merge mode an "
                "edit another writer saves between our read and our write can be lost",
                self.bucket,
                exc,
            )
            return
        self.versioning = answer.get("Status") == "Enabled"
        if self.versioning:
            log.info("bucket %r keeps object versions: overwritten edits are repaired", self.bucket)
            return
        log.warning(
            "bucket %r does not keep object versions: in merge mode an edit another writer saves "
            "in the moment between our last read and our write can be lost. Enable versioning "
            "on the bucket (Backblaze B2 keeps versions by default; S3/SeaweedFS/MinIO: "
            "put-bucket-versioning Status=Enabled) and set a lifecycle rule that expires old "
            "versions after a few days",
            self.bucket,
        )

    async def _delete_probe(self, probe: str, created: list[str | None]) -> None:
        for version in reversed(created):
            kwargs = {"VersionId": version} if version and version != "null" else {}
            try:
                await self._call("delete_object", Bucket=self.bucket, Key=probe, **kwargs)
            except _Signal:
                continue

    # -- S3 calls ------------------------------------------------------------------------------

    async def _call(self, op: str, **kwargs: Any) -> Any:
        self.stats.requests += 1
        try:
            return await getattr(self._client, op)(**kwargs)
        except ClientError as exc:
            raise self._classify(exc) from exc
        except BotoCoreError as exc:  # connection refused, timeouts, DNS
            self._count("network")
            raise StoreUnavailable(f"S3 unreachable: {exc}") from exc
        except OSError as exc:
            self._count("network")
            raise StoreUnavailable(f"S3 unreachable: {exc}") from exc

    def _classify(self, exc: ClientError) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code == "304" or status == "304":
            return _NotModified()
        if code in {"NoSuchKey", "404"}:
            return _Missing()
        if code in _PRECONDITION or status == "412":
            return _Precondition()
        if code in _NOT_IMPLEMENTED or status == "501":
            return _NotImplemented()
        if code in _AUTH_CODES or status in {"401", "403"}:
            self._count("auth")
            return StoreAuthError(f"S3 refused our credentials for bucket {self.bucket!r}: {code}")
        if code in _MISSING_BUCKET:
            self._count("auth")
            return StoreAuthError(f"S3 bucket {self.bucket!r} does not exist")
        self._count("server")
        return StoreUnavailable(f"S3 error {code or status}: {error.get('Message', '')}".strip())

    def _count(self, kind: str) -> None:
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1


class _Signal(Exception):
    """Internal: an S3 answer that is an expected branch, not a failure."""


class _NotModified(_Signal): ...


class _Missing(_Signal): ...


class _Precondition(_Signal): ...


class _NotImplemented(_Signal): ...


def _decoded(raw: bytes, encoding: str | None) -> bytes:
    if not encoding or "gzip" not in encoding.lower():
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DocumentError(
            f"schedule is stored gzip-encoded but does not decompress: {exc}"
        ) from None


def _encoded(body: bytes, encoding: str | None) -> bytes:
    if encoding and "gzip" in encoding.lower():
        return gzip.compress(body, mtime=0)
    return body


def _working_copy(body: bytes | None) -> Document:
    """A private copy to change (the cached document is shared with readers)."""
    return parse_document(body) if body is not None else Document(messages=[])


def _reapply_all(repairs: list[_Repair], doc: Document) -> bool:
    changed = False
    for repair in repairs:
        base, theirs = parse_document(repair.base), parse_document(repair.theirs)
        changed |= reapply(base, theirs, doc)
    return changed


def s3_client_config() -> Config:
    return Config(
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[ScheduleStore]:
    """The store for `settings`; the client closes when the block ends."""
    session = aioboto3.Session()
    key_id = settings.s3_access_key_id
    secret = settings.s3_secret_access_key
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=s3_client_config(),
    ) as client:
        yield ScheduleStore(client, settings.s3_bucket, settings.document_key)
