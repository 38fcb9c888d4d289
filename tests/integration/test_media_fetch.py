"""Fetching media against real servers: SeaweedFS and moto for bucket objects, a local
HTTP server for URLs (missing, oversize, wrong type, slow, bad redirects)."""

from __future__ import annotations

import gzip
import hashlib
import io
import time
from collections.abc import AsyncIterator

import boto3
import pytest
from PIL import Image
from pydantic import SecretStr

from tests.conftest import TEST_BUCKET, make_settings
from tests.support.webfiles import Answer, WebFiles
from wasched.cli.servers import S3Server
from wasched.common.media import Media, MediaKind
from wasched.common.messages import ErrorKind
from wasched.sender.media import (
    FetchLimits,
    MediaFetcher,
    MediaTooLarge,
    MediaUnavailable,
    MediaWrongType,
    open_fetcher,
)


def jpeg(size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((size, size), 80).convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()


CARD = jpeg()
PDF = b"%PDF-1.4\n" + b"0" * 200


def put(server: S3Server, key: str, body: bytes) -> None:
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    ).put_object(Bucket=TEST_BUCKET, Key=key, Body=body)


@pytest.fixture
async def web() -> AsyncIterator[WebFiles]:
    server = await WebFiles().start()
    yield server
    await server.stop()


def limits(**overrides: object) -> FetchLimits:
    values: dict[str, object] = {"timeout": 10.0, "allow_private": True}
    values.update(overrides)
    return FetchLimits(**values)  # type: ignore[arg-type]


@pytest.fixture
async def fetcher(s3: S3Server, prefix: str) -> AsyncIterator[MediaFetcher]:
    async with open_fetcher(make_settings(s3, prefix), limits()) as fetch:
        yield fetch


async def test_a_bucket_object_is_fetched_whole_with_its_hash(
    s3: S3Server, prefix: str, fetcher: MediaFetcher
) -> None:
    put(s3, f"{prefix}media/card.jpg", CARD)
    got = await fetcher.fetch(Media(kind=MediaKind.IMAGE, key=f"{prefix}media/card.jpg"))
    assert got.data == CARD
    assert (got.size, got.sha256) == (len(CARD), hashlib.sha256(CARD).hexdigest())
    assert (got.mime, got.file_name) == ("image/jpeg", "card.jpg")


async def test_a_missing_bucket_object_is_unavailable(prefix: str, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaUnavailable) as err:
        await fetcher.fetch(Media(kind=MediaKind.IMAGE, key=f"{prefix}media/nope.jpg"))
    assert err.value.kind is ErrorKind.MEDIA_UNAVAILABLE
    assert not err.value.transient
    assert f"media object '{prefix}media/nope.jpg' does not exist in bucket" in err.value.reason


async def test_an_oversize_bucket_object_is_refused_by_its_length(
    s3: S3Server, prefix: str
) -> None:
    put(s3, f"{prefix}media/big.jpg", CARD)
    small = limits(max_bytes={MediaKind.IMAGE: len(CARD) - 1})
    async with open_fetcher(make_settings(s3, prefix), small) as fetch:
        with pytest.raises(MediaTooLarge) as err:
            await fetch.fetch(Media(kind=MediaKind.IMAGE, key=f"{prefix}media/big.jpg"))
    assert err.value.kind is ErrorKind.MEDIA_TOO_LARGE
    assert f"{len(CARD):,} bytes is over the {len(CARD) - 1:,}-byte limit for image" in str(
        err.value
    )


async def test_a_bucket_object_of_the_wrong_type(
    s3: S3Server, prefix: str, fetcher: MediaFetcher
) -> None:
    put(s3, f"{prefix}media/menu.pdf", PDF)
    with pytest.raises(MediaWrongType) as err:
        await fetcher.fetch(Media(kind=MediaKind.VIDEO, key=f"{prefix}media/menu.pdf"))
    assert err.value.kind is ErrorKind.MEDIA_TYPE
    assert "the content is a PDF document, not a video" in err.value.reason


async def test_wrong_credentials_are_unavailable_and_say_so(seaweed: S3Server, prefix: str) -> None:
    """SeaweedFS checks credentials (moto accepts any)."""
    put(seaweed, f"{prefix}media/card.jpg", CARD)
    good = make_settings(seaweed, prefix)
    settings = good.model_copy(update={"s3_secret_access_key": SecretStr("wrong-secret")})
    async with open_fetcher(settings, limits()) as fetch:
        with pytest.raises(MediaUnavailable, match="S3 refuses to read media object"):
            await fetch.fetch(Media(kind=MediaKind.IMAGE, key=f"{prefix}media/card.jpg"))


@pytest.fixture
async def web_fetcher(moto: S3Server, prefix: str) -> AsyncIterator[MediaFetcher]:
    async with open_fetcher(make_settings(moto, prefix), limits(timeout=1.0)) as fetch:
        yield fetch


def web_media(web: WebFiles, path: str, kind: MediaKind = MediaKind.IMAGE) -> Media:
    return Media(kind=kind, url=web.url(path))


async def test_a_web_file_is_fetched(web: WebFiles, web_fetcher: MediaFetcher) -> None:
    web.answers["/card.jpg"] = Answer(body=CARD, headers={"Content-Type": "image/jpeg"})
    got = await web_fetcher.fetch(web_media(web, "/card.jpg"))
    assert (got.data, got.mime, got.file_name) == (CARD, "image/jpeg", "card.jpg")


async def test_a_document_gets_the_servers_type_when_the_content_does_not_tell(
    web: WebFiles, web_fetcher: MediaFetcher
) -> None:
    web.answers["/list.csv"] = Answer(body=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    got = await web_fetcher.fetch(web_media(web, "/list.csv", MediaKind.DOCUMENT))
    assert (got.mime, got.file_name) == ("text/csv", "list.csv")


@pytest.mark.parametrize(
    ("status", "transient"), [(404, False), (410, False), (403, False), (503, True), (429, True)]
)
async def test_http_errors_are_unavailable(
    web: WebFiles, web_fetcher: MediaFetcher, status: int, transient: bool
) -> None:
    web.answers["/x.jpg"] = Answer(status=status, body=b"<html>no</html>")
    with pytest.raises(MediaUnavailable) as err:
        await web_fetcher.fetch(web_media(web, "/x.jpg"))
    assert f"the server answered HTTP {status}" in err.value.reason
    assert err.value.transient is transient


async def test_an_announced_oversize_file_is_refused_before_its_body(
    web: WebFiles, moto: S3Server, prefix: str
) -> None:
    web.answers["/big.jpg"] = Answer(body=CARD, stall=30)  # the body would never come
    small = limits(max_bytes={MediaKind.IMAGE: 100}, timeout=5.0)
    async with open_fetcher(make_settings(moto, prefix), small) as fetch:
        with pytest.raises(MediaTooLarge, match=f"{len(CARD):,} bytes is over the 100-byte"):
            await fetch.fetch(web_media(web, "/big.jpg"))


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_an_oversize_file_without_a_length_stops_at_the_limit(
    web: WebFiles, moto: S3Server, prefix: str, encoding: str
) -> None:
    """No Content-Length, or a small gzip body that inflates: counted as it arrives."""
    body = CARD + b"\x00" * 2_000_000
    sent = gzip.compress(body) if encoding == "gzip" else body
    headers = {"Content-Encoding": "gzip"} if encoding == "gzip" else {}
    web.answers["/big.jpg"] = Answer(body=sent, headers=headers, content_length=False)
    small = limits(max_bytes={MediaKind.IMAGE: 1_000_000})
    async with open_fetcher(make_settings(moto, prefix), small) as fetch:
        with pytest.raises(MediaTooLarge, match="more is over the 1,000,000-byte limit for image"):
            await fetch.fetch(web_media(web, "/big.jpg"))


async def test_a_web_page_instead_of_the_picture(web: WebFiles, web_fetcher: MediaFetcher) -> None:
    web.answers["/card.jpg"] = Answer(
        body=b"<!DOCTYPE html><html><body>Please log in</body></html>" + b" " * 64,
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(MediaWrongType, match="the content is an HTML page, not an image"):
        await web_fetcher.fetch(web_media(web, "/card.jpg"))


async def test_a_slow_server_runs_out_of_time(web: WebFiles, web_fetcher: MediaFetcher) -> None:
    web.answers["/slow.jpg"] = Answer(body=CARD, stall=60)
    started = time.monotonic()
    with pytest.raises(MediaUnavailable) as err:
        await web_fetcher.fetch(web_media(web, "/slow.jpg"))
    assert err.value.reason.endswith("not fetched within 1 s")
    assert err.value.transient
    assert time.monotonic() - started < 30  # the server would have held it for 60 s


async def test_redirects_are_followed_to_http_only(
    web: WebFiles, web_fetcher: MediaFetcher
) -> None:
    web.answers["/card.jpg"] = Answer(body=CARD)
    web.answers["/old.jpg"] = Answer(status=302, headers={"Location": "/card.jpg"})
    assert (await web_fetcher.fetch(web_media(web, "/old.jpg"))).data == CARD
    web.answers["/ftp.jpg"] = Answer(
        status=301, headers={"Location": "ftp://files.example.org/card.jpg?token=s3cr3t"}
    )
    with pytest.raises(MediaUnavailable) as err:
        await web_fetcher.fetch(web_media(web, "/ftp.jpg"))
    assert "redirected to a ftp: address (ftp://files.example.org/card.jpg)" in err.value.reason
    assert "s3cr3t" not in err.value.reason


async def test_a_redirect_loop_ends(web: WebFiles, web_fetcher: MediaFetcher) -> None:
    web.answers["/a.jpg"] = Answer(status=302, headers={"Location": "/a.jpg"})
    with pytest.raises(MediaUnavailable, match="more than 5 redirects"):
        await web_fetcher.fetch(web_media(web, "/a.jpg"))
    assert web.requests.count("/a.jpg") == 6


async def test_private_addresses_are_refused_unless_allowed(
    web: WebFiles, moto: S3Server, prefix: str
) -> None:
    web.answers["/card.jpg"] = Answer(body=CARD)
    async with open_fetcher(make_settings(moto, prefix), FetchLimits(timeout=5)) as fetch:
        for host in ("127.0.0.1", "localhost"):
            media = Media(kind=MediaKind.IMAGE, url=f"http://{host}:{web.port}/card.jpg?k=1")
            with pytest.raises(MediaUnavailable) as err:
                await fetch.fetch(media)
            assert f"{host} is a private or local address" in err.value.reason
            assert "k=1" not in err.value.reason
    assert web.requests == []  # nothing was asked of the server
