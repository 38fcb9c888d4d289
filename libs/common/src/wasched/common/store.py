"""The schedule object in S3: conditional reads, conflict-safe writes.

Reads send `If-None-Match` with the last ETag so an unchanged schedule costs
no body. Writes send `If-Match`; on 412 the caller's change (a function over
the document, applied by message key) is re-applied to a fresh read. Stores
that reject conditional PUT (Backblaze B2) get re-read-merge-write instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from wasched.common.document import Document, parse_document, render_document
from wasched.common.settings import Settings

log = logging.getLogger("wasched.store")

MAX_WRITE_ATTEMPTS = 8
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


Mutation = Callable[[Document], bool]
"""Changes the document in place and says whether anything changed."""


@dataclass(slots=True)
class StoreStats:
    requests: int = 0
    bodies_read: int = 0
    bytes_downloaded: int = 0
    not_modified: int = 0
    writes: int = 0
    conflicts: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    doc: Document
    etag: str | None
    changed: bool
    exists: bool


class ScheduleStore:
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self.conditional_writes = True
        self.stats = StoreStats()
        self._etag: str | None = None
        self._body: bytes | None = None
        self._doc: Document | None = None

    @property
    def mode(self) -> str:
        return "conditional" if self.conditional_writes else "merge"

    async def load(self) -> Snapshot:
        """Conditional GET. The returned document is shared: do not mutate it."""
        return await self._read()

    async def update(self, mutate: Mutation) -> Snapshot:
        """Apply `mutate` to a fresh read and write it without losing others' edits."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            snap = await self._read()
            assert self._body is not None or not snap.exists
            doc = parse_document(self._body or b"")
            if not mutate(doc):
                return snap
            body = render_document(doc)
            if await self._put(body, doc, snap):
                return Snapshot(doc=doc, etag=self._etag, changed=True, exists=True)
            self.stats.conflicts += 1
            log.info("schedule changed by another writer during our write; re-applying")
        raise StoreConflict(f"gave up after {MAX_WRITE_ATTEMPTS} conflicting writes")

    async def detect_conditional_writes(self) -> bool:
        """Probe with a scratch object: B2 answers NotImplemented to `If-Match` on PUT."""
        probe = f"{self.key}.wasched-probe"
        try:
            first = await self._call("put_object", Bucket=self.bucket, Key=probe, Body=b"probe")
            try:
                await self._call(
                    "put_object",
                    Bucket=self.bucket,
                    Key=probe,
                    Body=b"probe",
                    IfMatch=first["ETag"],
                )
                self.conditional_writes = True
            except _NotImplemented:
                self.conditional_writes = False
            finally:
                await self._call("delete_object", Bucket=self.bucket, Key=probe)
        except _Precondition:
            self.conditional_writes = True
        log.info(
            "store mode: %s (%s)",
            self.mode,
            "If-Match writes"
            if self.conditional_writes
            else "store rejects conditional PUT; re-read-merge-write just before each PUT",
        )
        return self.conditional_writes

    async def _read(self) -> Snapshot:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self._etag and self._doc is not None:
            kwargs["IfNoneMatch"] = self._etag
        try:
            response = await self._call("get_object", **kwargs)
        except _NotModified:
            self.stats.not_modified += 1
            assert self._doc is not None
            return Snapshot(self._doc, self._etag, changed=False, exists=True)
        except _Missing:
            changed = self._etag is not None or self._doc is None
            self._etag, self._body, self._doc = None, None, Document(messages=[])
            return Snapshot(self._doc, None, changed=changed, exists=False)
        async with response["Body"] as stream:
            body = await stream.read()
        self.stats.bodies_read += 1
        self.stats.bytes_downloaded += len(body)
        doc = parse_document(body)  # raises DocumentError; the cache keeps the last good copy
        self._etag, self._body, self._doc = response.get("ETag"), body, doc
        return Snapshot(doc, self._etag, changed=True, exists=True)

    async def _put(self, body: bytes, doc: Document, read: Snapshot) -> bool:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Body": body,
            "ContentType": "application/json",
        }
        if self.conditional_writes:
            if read.exists and read.etag:
                kwargs["IfMatch"] = read.etag
            else:
                kwargs["IfNoneMatch"] = "*"
        try:
            response = await self._call("put_object", **kwargs)
        except _Precondition:
            return False
        except _NotImplemented:
            log.warning("store rejected a conditional PUT; switching to merge mode")
            self.conditional_writes = False
            return False
        self.stats.writes += 1
        self._etag, self._body, self._doc = response.get("ETag"), body, doc
        return True

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
