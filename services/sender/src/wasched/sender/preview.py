"""A link preview for `linkPreview: true`, made by the sender before the claim, bounded.

neonize 0.5.2 makes its own inside `send_message(..., link_preview=True)`: it reads the
page from any address (the operator's own network too), falls back to a blocking library
when the page answers an error, and fetches the picture with no time limit — all inside
the send, where a hang would look like an `interrupted` send. So the sender makes the
same preview (title, description, the matched link, a small JPEG) itself, through the
media fetcher: public addresses only, one deadline, size limits, a type check. The
`linkpreview` library (which neonize uses too) only parses the page here. A preview that
cannot be made is no reason to hold the text back: it then goes without one.
"""

from __future__ import annotations

import asyncio
import io
import re

from wasched.common.media import Media, MediaKind, redact_url
from wasched.sender.media import MediaFetcher, MediaFetchError
from wasched.sender.transport import LinkPreview

LINK = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
PAGE_BYTES = 1024 * 1024
"""Like neonize's own grabber: the title and picture are in the page's head."""
PICTURE_BYTES = 5 * 1024 * 1024
THUMBNAIL_PIXELS = 300
_HTML = {"text/html", "application/xhtml+xml"}
_TRAILING = ".,;:!?)]}'\""


class PreviewFailed(Exception):
    """No preview: the text goes without one; the text says why."""


def first_link(text: str) -> str | None:
    """The first http(s) link, without the punctuation that ends a sentence around it."""
    found = LINK.search(text)
    return found.group(0).rstrip(_TRAILING) if found else None


async def make_preview(text: str, fetcher: MediaFetcher) -> LinkPreview:
    """The preview of the first link in `text`, within the fetcher's deadline."""
    url = first_link(text)
    if url is None:
        raise PreviewFailed("the text has no http(s) link")
    try:
        async with asyncio.timeout(fetcher.limits.timeout):
            return await _preview(url, fetcher)
    except TimeoutError:
        raise PreviewFailed(
            f"{redact_url(url)}: no preview within {fetcher.limits.timeout:g} s"
        ) from None


async def _preview(url: str, fetcher: MediaFetcher) -> LinkPreview:
    try:
        page = await fetcher.fetch(Media(kind=MediaKind.DOCUMENT, url=url), limit=PAGE_BYTES)
    except MediaFetchError as exc:
        raise PreviewFailed(exc.reason) from None
    if page.mime not in _HTML:
        raise PreviewFailed(f"{redact_url(url)} is {page.mime}, not a web page")
    title, description, picture = await asyncio.to_thread(_parse, url, page.data)
    if not title:
        raise PreviewFailed(f"{redact_url(url)}: the page has no title")
    thumbnail, size = await _thumbnail(picture, fetcher) if picture else (None, None)
    return LinkPreview(
        url=url, title=title, description=description, thumbnail=thumbnail, thumbnail_size=size
    )


def _parse(url: str, html: bytes) -> tuple[str, str, str | None]:
    from linkpreview import Link
    from linkpreview import LinkPreview as Parsed

    content = html.decode("utf-8", errors="replace")
    parsed = Parsed(Link(url, content), parser="html.parser")
    picture = parsed.absolute_image
    if picture and not str(picture).lower().startswith(("http://", "https://")):
        picture = None
    return _clean(parsed.title), _clean(parsed.description), picture


async def _thumbnail(
    picture: str, fetcher: MediaFetcher
) -> tuple[bytes | None, tuple[int, int] | None]:
    """A small JPEG of the page's picture; none when it cannot be had (the text still goes)."""
    try:
        image = await fetcher.fetch(Media(kind=MediaKind.IMAGE, url=picture), limit=PICTURE_BYTES)
        return await asyncio.to_thread(_jpeg, image.data)
    except (MediaFetchError, OSError, ValueError):
        return None, None


def _jpeg(data: bytes) -> tuple[bytes, tuple[int, int]]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
        return out.getvalue(), image.size


def _clean(value: object) -> str:
    return " ".join(str(value).split())[:300] if value else ""
