"""Link previews made by the sender before the claim, against a real web server on 127.0.0.1:
the page's title, description and picture; every way it can fail leaves the text to go
without a preview, within the fetch deadline."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from tests.support.mediafiles import jpeg
from tests.support.webfiles import Answer, WebFiles
from wasched.sender.media import FetchLimits, MediaFetcher
from wasched.sender.preview import PreviewFailed, first_link, make_preview

PAGE = b"""<!doctype html><html><head><title>Plain</title>
<meta property="og:title" content="Mince pies, tested">
<meta name="description" content="Twelve recipes,
  one winner.">
<meta property="og:image" content="/pie.jpg"></head><body>x</body></html>"""


@pytest.fixture
async def web() -> AsyncIterator[WebFiles]:
    server = await WebFiles().start()
    yield server
    await server.stop()


async def fetcher_for(allow_private: bool = True, timeout: float = 5.0) -> MediaFetcher:
    limits = FetchLimits(timeout=timeout, allow_private=allow_private)
    return MediaFetcher(s3=None, bucket="-", http=httpx.AsyncClient(), limits=limits)


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("Read https://example.org/post.", "https://example.org/post"),
        ("(see http://x.org/a?b=1)", "http://x.org/a?b=1"),
        ("two: https://a.org and https://b.org", "https://a.org"),
        ("no link at all, just example.org", None),
    ],
)
def test_the_first_link_without_the_sentence_around_it(text: str, link: str | None) -> None:
    assert first_link(text) == link


async def test_a_preview_has_the_title_description_and_a_small_picture(web: WebFiles) -> None:
    web.answers["/post"] = Answer(body=PAGE, headers={"Content-Type": "text/html"})
    web.answers["/pie.jpg"] = Answer(body=jpeg(640), headers={"Content-Type": "image/jpeg"})
    preview = await make_preview(f"Read {web.url('/post')} now", await fetcher_for())
    assert preview.url == web.url("/post")
    assert (preview.title, preview.description) == (
        "Mince pies, tested",
        "Twelve recipes, one winner.",
    )
    assert preview.thumbnail is not None
    assert Image.open(io.BytesIO(preview.thumbnail)).size == preview.thumbnail_size == (300, 300)


async def test_a_picture_that_cannot_be_had_leaves_the_title(web: WebFiles) -> None:
    web.answers["/post"] = Answer(body=PAGE, headers={"Content-Type": "text/html"})
    web.answers["/pie.jpg"] = Answer(body=b"<html>moved</html>")
    preview = await make_preview(web.url("/post"), await fetcher_for())
    assert preview.title == "Mince pies, tested"
    assert (preview.thumbnail, preview.thumbnail_size) == (None, None)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (Answer(status=404, body=b"gone"), "answered HTTP 404"),
        (Answer(body=b"%PDF-1.4 x" + b"0" * 80), "is application/pdf, not a web page"),
        (Answer(body=b"<html><head></head><body>hi</body></html>"), "the page has no title"),
    ],
)
async def test_no_preview_says_why(web: WebFiles, answer: Answer, says: str) -> None:
    web.answers["/post"] = answer
    with pytest.raises(PreviewFailed, match=says):
        await make_preview(web.url("/post"), await fetcher_for())


async def test_a_private_address_is_not_read_unless_allowed(web: WebFiles) -> None:
    web.answers["/post"] = Answer(body=PAGE, headers={"Content-Type": "text/html"})
    with pytest.raises(PreviewFailed, match="private or local address"):
        await make_preview(web.url("/post"), await fetcher_for(allow_private=False))
    assert web.requests == [], "nothing was asked of the operator's own network"


async def test_a_slow_page_is_given_up_within_the_deadline(web: WebFiles) -> None:
    web.answers["/post"] = Answer(body=PAGE, stall=30)
    with pytest.raises(PreviewFailed, match=r"within 0\.5 s"):
        await make_preview(web.url("/post"), await fetcher_for(timeout=0.5))
