"""S3 requests for the schedule store: one call wrapper that counts, and what answers mean.

Expected answers (304, 404, 412, 501) become signals the store branches on; credentials
or a missing bucket are fatal (`StoreAuthError`); anything else is worth retrying
(`StoreUnavailable`). Error counts by kind feed the poller's heartbeat.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from wasched.common.document import DocumentError

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


class Signal(Exception):
    """An S3 answer that is an expected branch, not a failure."""


class NotModified(Signal): ...


class Missing(Signal): ...


class Precondition(Signal): ...


class Unsupported(Signal):
    """501 NotImplemented (Backblaze B2 to a conditional PUT)."""


@dataclass(slots=True)
class StoreStats:
    requests: int = 0
    bodies_read: int = 0
    bytes_downloaded: int = 0
    not_modified: int = 0
    writes: int = 0
    bytes_written: int = 0
    conflicts: int = 0
    repairs: int = 0
    """Other writers' versions that a blind PUT overwrote and whose changes were put back."""
    errors: dict[str, int] = field(default_factory=dict)


class S3Calls:
    def __init__(self, client: Any, bucket: str, stats: StoreStats) -> None:
        self._client, self.bucket, self.stats = client, bucket, stats

    async def __call__(self, op: str, **kwargs: Any) -> Any:
        self.stats.requests += 1
        try:
            return await getattr(self._client, op)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            raise self._classify(exc) from exc
        except (BotoCoreError, OSError) as exc:  # connection refused, timeouts, DNS
            self._count("network")
            raise StoreUnavailable(f"S3 unreachable: {exc}") from exc

    async def body(self, response: Any) -> bytes:
        async with response["Body"] as stream:
            body = bytes(await stream.read())
        self.stats.bodies_read += 1
        self.stats.bytes_downloaded += len(body)
        return body

    def _classify(self, exc: ClientError) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code == "304" or status == "304":
            return NotModified()
        if code in {"NoSuchKey", "404"}:
            return Missing()
        if code in _PRECONDITION or status == "412":
            return Precondition()
        if code in _NOT_IMPLEMENTED or status == "501":
            return Unsupported()
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


def decoded(raw: bytes, encoding: str | None) -> bytes:
    """The JSON text of a stored body (`Content-Encoding: gzip` is undone)."""
    if not encoding or "gzip" not in encoding.lower():
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DocumentError(
            f"schedule is stored gzip-encoded but does not decompress: {exc}"
        ) from None


def encoded(body: bytes, encoding: str | None) -> bytes:
    """The body to store in `encoding` (the one the document was read in)."""
    if encoding and "gzip" in encoding.lower():
        return gzip.compress(body, mtime=0)
    return body


def s3_client_config() -> Config:
    return Config(
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
