"""Making a job's content ready before the claim: what is never fetched, and how often a
fetch that may pass is tried again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from wasched.common.media import Media, MediaKind
from wasched.common.messages import ErrorKind
from wasched.common.settings import load_settings
from wasched.sender.content import RETRY_DELAYS, Contents, Fetchers, Unsendable, retry_delay
from wasched.sender.inbound import Job
from wasched.sender.media import FetchLimits, MediaUnavailable


class Fetcher:
    def __init__(self) -> None:
        self.fetched: list[Media] = []
        self.limits = FetchLimits()

    async def fetch(self, media: Media, limit: int | None = None) -> Any:
        self.fetched.append(media)
        raise MediaUnavailable(f"{media.where}: S3 unreachable", transient=True)


def contents(
    unavailable: dict[MediaKind, str] | None = None, **settings: Any
) -> tuple[Contents, Fetcher]:
    fetcher = Fetcher()

    @asynccontextmanager
    async def opener(*_: Any) -> AsyncIterator[Fetcher]:
        yield fetcher

    values = {"s3_endpoint": "http://127.0.0.1:1", **settings}
    fetchers = Fetchers(load_settings(_env_file=None, **values), FetchLimits(), opener)
    return Contents(fetchers, unavailable or {}), fetcher


def job(media: Media | None = None, text: str = "hi", **extra: Any) -> Job:
    when = datetime(2026, 12, 24, 9, tzinfo=UTC)
    return Job(
        id="m1",
        to="447957189696",
        text=text,
        subject="wasched.due",
        scheduled=when,
        media=media,
        **extra,
    )


VOICE = Media(kind=MediaKind.VOICE, key="whatsapp/media/v.ogg")


def test_transient_failures_are_tried_again_three_times_then_fail() -> None:
    assert [retry_delay(n) for n in range(0, 6)] == [None, *RETRY_DELAYS, None, None]
    prepared, _ = contents()
    assert [prepared.retry_after("m1") for _ in range(5)] == [10.0, 60.0, 300.0, None, 10.0]


async def test_a_type_the_sender_cannot_send_fails_before_anything_is_fetched() -> None:
    prepared, fetcher = contents({MediaKind.VOICE: "voice needs ffprobe (its length) on PATH"})
    got = await prepared.prepare(job(VOICE, text=""))
    assert got == Unsendable(
        ErrorKind.MEDIA_UNAVAILABLE, "voice needs ffprobe (its length) on PATH"
    )
    assert fetcher.fetched == []


async def test_bucket_media_without_s3_settings_says_what_is_missing() -> None:
    prepared, fetcher = contents(s3_endpoint=None)
    got = await prepared.prepare(job(VOICE, text=""))
    assert isinstance(got, Unsendable) and got.kind is ErrorKind.MEDIA_UNAVAILABLE
    assert "the sender has no S3 settings" in got.reason and not got.transient
    assert fetcher.fetched == []


async def test_a_fetch_error_keeps_its_kind_and_whether_it_may_pass() -> None:
    prepared, fetcher = contents()
    got = await prepared.prepare(job(VOICE, text=""))
    assert got == Unsendable(
        ErrorKind.MEDIA_UNAVAILABLE, "whatsapp/media/v.ogg: S3 unreachable", True
    )
    assert fetcher.fetched == [VOICE]


@pytest.mark.parametrize("link_preview", [False, True])
async def test_a_text_needs_no_fetcher_unless_it_asks_for_a_preview(link_preview: bool) -> None:
    prepared, _ = contents()
    got = await prepared.prepare(job(text="no link here", link_preview=link_preview))
    assert got.text == "no link here"  # type: ignore[union-attr]
    assert got.link_preview is link_preview  # type: ignore[union-attr]
    assert got.preview is None  # type: ignore[union-attr]
    assert (got.preview_error is not None) is link_preview  # type: ignore[union-attr]
    assert (prepared.fetchers._fetcher is not None) is link_preview
