"""What a job sends, made ready before the claim: its media fetched and checked, its preview.

Everything here happens before anything reaches WhatsApp, so a failure is an honest
`failed` with the media error's kind (`media_unavailable`, `media_too_large`,
`media_type`), never `interrupted`. A failure that may pass (S3 or the web server down, a
timeout) is tried again a few times, `RETRY_DELAYS` apart, then fails. A type this
sender cannot send (no ffmpeg for video, audio and voice notes) fails before anything is
fetched or uploaded.

The fetcher (S3 and HTTP clients) is opened at the first message that needs it, so a
sender that only sends text never imports aioboto3.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasched.common.media import MediaKind
from wasched.common.messages import ErrorKind
from wasched.common.settings import Settings
from wasched.sender.inbound import Job
from wasched.sender.media import FetchLimits, MediaFetcher, MediaFetchError, open_fetcher
from wasched.sender.preview import PreviewFailed, make_preview
from wasched.sender.transport import Content, MediaContent, TextContent

log = logging.getLogger("wasched.sender")
RETRY_DELAYS = (10.0, 60.0, 300.0)
"""Waits before the 2nd, 3rd and 4th try of a fetch that failed in a way that may pass."""
MAX_TRACKED = 1000


@dataclass(frozen=True, slots=True)
class Unsendable:
    """The content cannot be made ready; nothing was sent."""

    kind: ErrorKind
    reason: str
    transient: bool = False


def retry_delay(failures: int) -> float | None:
    """The wait after the `failures`-th transient failure of one message; None: give up."""
    return RETRY_DELAYS[failures - 1] if 0 < failures <= len(RETRY_DELAYS) else None


class Fetchers:
    """One `MediaFetcher`, opened when first needed and closed with the sender."""

    def __init__(
        self, settings: Settings, limits: FetchLimits, opener: Callable[..., Any] = open_fetcher
    ) -> None:
        self.settings, self.limits, self._opener = settings, limits, opener
        self._stack = contextlib.AsyncExitStack()
        self._fetcher: MediaFetcher | None = None

    @property
    def has_s3(self) -> bool:
        return self.settings.s3_endpoint is not None or self.settings.s3_access_key_id is not None

    async def get(self) -> MediaFetcher:
        if self._fetcher is None:
            self._fetcher = await self._stack.enter_async_context(
                self._opener(self.settings, self.limits)
            )
        return self._fetcher

    async def close(self) -> None:
        await self._stack.aclose()
        self._fetcher = None


class Contents:
    def __init__(self, fetchers: Fetchers, unavailable: dict[MediaKind, str]) -> None:
        self.fetchers = fetchers
        self.unavailable = unavailable
        self._failures: dict[str, int] = {}

    async def prepare(self, job: Job) -> Content | Unsendable:
        media = job.media
        if media is None:
            return await self._text(job)
        if media.kind in self.unavailable:
            return Unsendable(ErrorKind.MEDIA_UNAVAILABLE, self.unavailable[media.kind])
        if media.key is not None and not self.fetchers.has_s3:
            return Unsendable(
                ErrorKind.MEDIA_UNAVAILABLE,
                f"{media.where}: the sender has no S3 settings (S3_ENDPOINT, S3_ACCESS_KEY_ID, "
                "S3_SECRET_ACCESS_KEY) to read media from the bucket",
            )
        try:
            fetched = await (await self.fetchers.get()).fetch(media)
        except MediaFetchError as exc:
            return Unsendable(exc.kind, exc.reason, exc.transient)
        self._failures.pop(job.id, None)
        log.info(
            "%s: %s fetched (%s bytes, %s, sha256 %s…)",
            job.id,
            media.kind.value,
            f"{fetched.size:,}",
            fetched.mime,
            fetched.sha256[:12],
        )
        return MediaContent(kind=media.kind, file=fetched, caption=job.text or None)

    def retry_after(self, job_id: str) -> float | None:
        """Count a transient failure of `job_id`; how long to wait before the next try."""
        if len(self._failures) >= MAX_TRACKED:
            self._failures.clear()  # a bound, not a policy: a sender restart forgets them too
        count = self._failures.get(job_id, 0) + 1
        self._failures[job_id] = count
        delay = retry_delay(count)
        if delay is None:
            self._failures.pop(job_id, None)
        return delay

    async def _text(self, job: Job) -> TextContent:
        if not job.link_preview:
            return TextContent(job.text)
        try:
            preview = await make_preview(job.text, await self.fetchers.get())
        except PreviewFailed as exc:
            log.info("%s: sent without a link preview (%s)", job.id, exc)
            return TextContent(job.text, link_preview=True, preview_error=str(exc))
        return TextContent(job.text, link_preview=True, preview=preview)
