"""Fetching a message's media before it is sent: from the bucket or over http(s), bounded.

Everything happens before anything reaches WhatsApp, so every failure here is an
honest `failed` (never `interrupted`): the error's `kind` is the `errorKind` to
report. `transient` marks failures that may pass (S3 or the web server down, a
timeout); the caller decides whether to try again later.

Bounds: one deadline for the whole fetch (connect, redirects, body), a size limit
per media type checked against the announced length and again while streaming (a
server may lie, a gzip body may inflate), and a type check on the first bytes, so
a wrong or oversized file stops early. URLs are fetched only from public addresses
unless `allow_private` (a message must not make the sender read the operator's
own network), redirects only to http(s), at most `max_redirects` of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from wasched.common.media import (
    DEFAULT_LIMITS,
    ContentMismatch,
    Media,
    MediaKind,
    content_mime,
    parse_limits,
    redact_url,
)
from wasched.common.messages import ErrorKind
from wasched.common.settings import Settings
from wasched.common.sniff import HEAD_BYTES

CHUNK_BYTES = 64 * 1024
USER_AGENT = "wasched-sender (media fetch)"
_MISSING = {"NoSuchKey", "404", "NotFound"}
_REFUSED = {"AccessDenied", "403", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class MediaFetchError(Exception):
    kind: ClassVar[ErrorKind]

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class MediaUnavailable(MediaFetchError):
    kind = ErrorKind.MEDIA_UNAVAILABLE


class MediaTooLarge(MediaFetchError):
    kind = ErrorKind.MEDIA_TOO_LARGE


class MediaWrongType(MediaFetchError):
    kind = ErrorKind.MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class FetchedMedia:
    data: bytes
    size: int
    sha256: str
    mime: str
    """The mimetype to send (from the content; `audio/ogg; codecs=opus` for Opus)."""
    file_name: str


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: Mapping[MediaKind, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    timeout: float = 30.0
    max_redirects: int = 5
    allow_private: bool = False

    @classmethod
    def from_values(
        cls, max_bytes: str = "", timeout: float = 30.0, allow_private: bool = False
    ) -> FetchLimits:
        """From settings values (`MEDIA_MAX_BYTES="video=64MiB"` etc.); `ValueError` names
        the bad part."""
        return cls(max_bytes=parse_limits(max_bytes), timeout=timeout, allow_private=allow_private)


class MediaFetcher:
    def __init__(
        self, *, s3: Any, bucket: str, http: httpx.AsyncClient, limits: FetchLimits | None = None
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._http = http
        self.limits = limits or FetchLimits()

    async def fetch(self, media: Media, limit: int | None = None) -> FetchedMedia:
        """The content, checked; raises a `MediaFetchError`. `limit` replaces the type's
        size limit (a link preview's page and picture are kept small)."""
        limit = limit or self.limits.max_bytes[media.kind]
        try:
            async with asyncio.timeout(self.limits.timeout):
                if media.key is not None:
                    return await self._from_bucket(media, limit)
                return await self._from_web(media, limit)
        except TimeoutError:
            raise MediaUnavailable(
                f"{media.where}: not fetched within {self.limits.timeout:g} s", transient=True
            ) from None

    async def _from_bucket(self, media: Media, limit: int) -> FetchedMedia:
        from aiohttp import ClientError as HttpError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = await self._s3.get_object(Bucket=self._bucket, Key=media.key)
            body = response["Body"]
            async with body:  # closes the connection on every way out
                length = response.get("ContentLength")
                if isinstance(length, int) and length > limit:
                    raise _too_large(media, limit, length)
                collect = _Collector(media, limit, response.get("ContentType"))
                while chunk := await body.read(CHUNK_BYTES):
                    collect.add(chunk)
            return collect.finish()
        except ClientError as exc:
            raise self._bucket_error(media, exc) from None
        except (BotoCoreError, HttpError, OSError) as exc:
            raise MediaUnavailable(
                f"{media.where}: S3 unreachable ({exc})", transient=True
            ) from None

    def _bucket_error(self, media: Media, exc: Any) -> MediaUnavailable:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _MISSING or status == "404":
            return MediaUnavailable(
                f"media object {media.key!r} does not exist in bucket {self._bucket!r}"
            )
        if code in _REFUSED or status == "403":
            return MediaUnavailable(f"S3 refuses to read media object {media.key!r} ({code})")
        return MediaUnavailable(f"{media.where}: S3 error {code or status}", transient=True)

    async def _from_web(self, media: Media, limit: int) -> FetchedMedia:
        url = media.url or ""
        for _ in range(self.limits.max_redirects + 1):
            await self._check_host(url, media)
            try:
                request = self._http.build_request("GET", url, headers={"User-Agent": USER_AGENT})
                response = await self._http.send(request, stream=True, follow_redirects=False)
                try:
                    if response.is_redirect:
                        url = _redirect(url, response.headers.get("location"), media)
                        continue
                    return await _read(response, media, limit)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                reason = str(exc) or type(exc).__name__
                raise MediaUnavailable(f"{media.where}: {reason}", transient=True) from None
        raise MediaUnavailable(f"{media.where}: more than {self.limits.max_redirects} redirects")

    async def _check_host(self, url: str, media: Media) -> None:
        if self.limits.allow_private:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise MediaUnavailable(
                f"{media.where}: cannot resolve {host} ({exc})", transient=True
            ) from None
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not address.is_global:
                raise MediaUnavailable(
                    f"{media.where}: {host} is a private or local address ({address}); "
                    "media URLs must be public (MEDIA_URL_ALLOW_PRIVATE=true allows your own network)"
                )


async def _read(response: httpx.Response, media: Media, limit: int) -> FetchedMedia:
    code = response.status_code
    if code != 200:
        transient = code == 429 or code >= 500
        raise MediaUnavailable(
            f"{media.where}: the server answered HTTP {code}", transient=transient
        )
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise _too_large(media, limit, int(announced))
    collect = _Collector(media, limit, response.headers.get("content-type"))
    async for chunk in response.aiter_bytes(CHUNK_BYTES):
        collect.add(chunk)
    return collect.finish()


def _redirect(url: str, location: str | None, media: Media) -> str:
    if not location:
        raise MediaUnavailable(f"{media.where}: a redirect without a Location")
    target = urljoin(url, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme not in {"http", "https"}:
        raise MediaUnavailable(
            f"{media.where}: redirected to a {scheme or 'relative'}: address "
            f"({redact_url(target)}); only http(s) is fetched"
        )
    return target


class _Collector:
    """The body so far: size limit, hash, and the type check once the head is in."""

    def __init__(self, media: Media, limit: int, hint: str | None) -> None:
        self.media, self.limit, self.hint = media, limit, hint
        self.buffer = bytearray()
        self.digest = hashlib.sha256()
        self.mime: str | None = None

    def add(self, chunk: bytes) -> None:
        if len(self.buffer) + len(chunk) > self.limit:
            raise _too_large(self.media, self.limit)
        self.buffer += chunk
        self.digest.update(chunk)
        if self.mime is None and len(self.buffer) >= HEAD_BYTES:
            self.mime = self._check()

    def finish(self) -> FetchedMedia:
        if not self.buffer:
            raise MediaUnavailable(f"{self.media.where}: is empty (0 bytes)")
        mime = self.mime or self._check()
        return FetchedMedia(
            data=bytes(self.buffer),
            size=len(self.buffer),
            sha256=self.digest.hexdigest(),
            mime=mime,
            file_name=self.media.name,
        )

    def _check(self) -> str:
        media = self.media
        try:
            return content_mime(
                media.kind, media.mime_type, bytes(self.buffer[:HEAD_BYTES]), self.hint
            )
        except ContentMismatch as exc:
            raise MediaWrongType(f"{media.where}: {exc}") from None


def _too_large(media: Media, limit: int, size: int | None = None) -> MediaTooLarge:
    what = f"{size:,} bytes" if size is not None else "more"
    return MediaTooLarge(
        f"{media.where}: {what} is over the {limit:,}-byte limit for {media.kind.value} "
        "(MEDIA_MAX_BYTES)"
    )


@asynccontextmanager
async def open_fetcher(
    settings: Settings, limits: FetchLimits | None = None
) -> AsyncIterator[MediaFetcher]:
    """A fetcher on the store's bucket and S3 settings; both clients close with the block."""
    from wasched.common.store import s3_client  # aioboto3: ~1 s to import, only for media

    limits = limits or FetchLimits()
    async with (
        s3_client(settings) as s3,
        httpx.AsyncClient(timeout=limits.timeout) as http,
    ):
        yield MediaFetcher(s3=s3, bucket=settings.s3_bucket, http=http, limits=limits)
