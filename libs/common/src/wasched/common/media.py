"""The `media` field of a message: what to attach, where it is, and what WhatsApp takes.

`{"type": "image", "key": "whatsapp/media/card.jpg", "caption": "…"}` or with `"url":
"https://…"` instead of `key`. The checks here need no I/O: the shape of the field,
and (given the first bytes) whether the content is a format WhatsApp takes for that
type. Fetching is the sender's job (`wasched.sender.media`).

Default size limits are WhatsApp's own for the Cloud API (image 5 MB; video, audio
16 MB; document 100 MB — see docs/media.md for the sources); a linked device (what
wasched is) may send more, so they are configurable (`parse_limits`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wasched.common.sniff import SNIFFABLE, Sniffed, sniff


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    """A voice note (push-to-talk): Ogg/Opus only."""
    DOCUMENT = "document"


MIB = 1024 * 1024
DEFAULT_LIMITS: dict[MediaKind, int] = {
    MediaKind.IMAGE: 5 * MIB,
    MediaKind.VIDEO: 16 * MIB,
    MediaKind.AUDIO: 16 * MIB,
    MediaKind.VOICE: 16 * MIB,
    MediaKind.DOCUMENT: 100 * MIB,
}
MAX_CAPTION_CHARS = 1024
MAX_FILE_NAME_CHARS = 255
MAX_URL_CHARS = 2048
MAX_KEY_BYTES = 1024
OPUS = "audio/ogg; codecs=opus"
"""The mimetype WhatsApp needs for Ogg/Opus; plain `audio/ogg` voice notes go undelivered."""

FORMATS: dict[MediaKind, frozenset[str]] = {
    MediaKind.IMAGE: frozenset({"image/jpeg", "image/png", "image/webp"}),
    MediaKind.VIDEO: frozenset({"video/mp4", "video/3gpp"}),
    MediaKind.AUDIO: frozenset({"audio/aac", "audio/mp4", "audio/mpeg", "audio/ogg", "audio/amr"}),
    MediaKind.VOICE: frozenset({"audio/ogg"}),
}
"""What WhatsApp takes per type (documents: anything)."""

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "video/3gp": "video/3gpp",
    "audio/mp3": "audio/mpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/x-aac": "audio/aac",
    "audio/opus": "audio/ogg",
}
_FIELDS = ("type", "url", "key", "caption", "fileName", "mimeType")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|KIB|MB|MIB|GB|GIB)?")
_UNITS = {"B": 1, "KB": 1000, "KIB": 1024, "MB": 10**6, "MIB": MIB, "GB": 10**9, "GIB": 1024**3}


class MediaInvalid(ValueError):
    """The `media` field cannot be used; the text names the part (`media.key: …`)."""


class ContentMismatch(ValueError):
    """The content is not a format WhatsApp takes for the declared type."""


@dataclass(frozen=True, slots=True)
class Media:
    kind: MediaKind
    url: str | None = None
    key: str | None = None
    caption: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    """As declared, normalised (lower case, no parameters, aliases resolved)."""

    @property
    def where(self) -> str:
        """For logs and errors: the key, or the URL without query or credentials (a
        signed URL carries its secret in the query)."""
        return self.key if self.key is not None else redact_url(self.url or "")

    @property
    def name(self) -> str:
        """The file name to show: `fileName`, else the last part of the key or URL path."""
        if self.file_name:
            return self.file_name
        path = self.key if self.key is not None else urlsplit(self.url or "").path
        return PurePosixPath(path).name or self.kind.value


def read_media(raw: object, *, key_prefix: str | None = None) -> Media:
    """Check the `media` field; `key_prefix` (e.g. `whatsapp/media/`) is where keys must
    point, so a message cannot have any other object of the bucket sent."""
    if not isinstance(raw, dict):
        raise MediaInvalid(
            'media: expected an object like {"type": "image", "key": "whatsapp/media/card.jpg"}'
        )
    _no_misspelt_fields(raw)
    kind = _kind(raw.get("type"))
    url, key = raw.get("url"), raw.get("key")
    if (url is None) == (key is None):
        raise MediaInvalid("media: give exactly one of url (http/https) or key (in the bucket)")
    return Media(
        kind=kind,
        url=_url(url) if url is not None else None,
        key=_key(key, key_prefix) if key is not None else None,
        caption=_caption(raw.get("caption"), kind),
        file_name=_file_name(raw.get("fileName")),
        mime_type=_declared_mime(raw.get("mimeType"), kind),
    )


def read_link_preview(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MediaInvalid(f"linkPreview: expected true or false, got {value!r}")
    return value


def content_mime(
    kind: MediaKind, declared: str | None, head: bytes, hint: str | None = None
) -> str:
    """The mimetype to send for content starting with `head`, or `ContentMismatch`.

    Images, video and audio must sniff as a format WhatsApp takes for `kind` (what the
    content is wins over a declared type of the same kind). A document may be anything:
    the declared type, else the sniffed one, else `hint` (a Content-Type header)."""
    found = sniff(head)
    if kind is MediaKind.DOCUMENT:
        if declared and found and declared in SNIFFABLE and declared != found.mime:
            raise ContentMismatch(f"the content is {found.label}, not {declared}")
        return declared or (found.mime if found else None) or _clean_hint(hint)
    if not head:
        raise ContentMismatch(f"the content is empty, not {_article(kind)}")
    if found is None:
        raise ContentMismatch(f"the content is not {_article(kind)} ({_takes(kind)})")
    mime = "audio/mp4" if kind is MediaKind.AUDIO and found.mime == "video/mp4" else found.mime
    if mime not in FORMATS[kind]:
        raise ContentMismatch(
            f"the content is {found.label}, not {_article(kind)} ({_takes(kind)})"
        )
    if mime == "audio/ogg":
        return _opus(found, kind)
    return mime


def _opus(found: Sniffed, kind: MediaKind) -> str:
    if found.codec != "opus":
        raise ContentMismatch(
            f"the content is {found.label}; WhatsApp plays Ogg {kind.value} only with the "
            "Opus codec (e.g. ffmpeg -i in.wav -c:a libopus out.ogg)"
        )
    return OPUS


def parse_limits(text: str) -> dict[MediaKind, int]:
    """A limits setting: `image=5MiB,video=16MB,document=104857600` over the defaults."""
    limits = dict(DEFAULT_LIMITS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, size = item.partition("=")
        try:
            kind = MediaKind(name.strip().lower())
        except ValueError:
            kinds = ", ".join(k.value for k in MediaKind)
            raise ValueError(f"{name.strip()!r} is not a media type ({kinds})") from None
        match = _SIZE.fullmatch(size.strip().upper()) if sep else None
        if match is None:
            raise ValueError(f"{item!r}: expected TYPE=SIZE, e.g. video=16MiB")
        limits[kind] = int(float(match[1]) * _UNITS[match[2] or "B"])
        if limits[kind] < 1:
            raise ValueError(f"{item!r}: the limit must be at least 1 byte")
    return limits


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _no_misspelt_fields(raw: dict[str, Any]) -> None:
    known = {name.lower().replace("_", ""): name for name in _FIELDS}
    for name in raw:
        right = known.get(str(name).lower().replace("_", ""))
        if right is not None and right != name:
            raise MediaInvalid(f"media.{name}: did you mean {right}?")


def _kind(value: object) -> MediaKind:
    try:
        return MediaKind(value)  # type: ignore[arg-type]
    except ValueError:
        kinds = ", ".join(k.value for k in MediaKind)
        raise MediaInvalid(f"media.type: expected one of {kinds}, got {value!r}") from None


def _url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MediaInvalid(f"media.url: expected an http(s) URL, got {value!r}")
    url = value.strip()
    if len(url) > MAX_URL_CHARS or _CONTROL.search(url) or " " in url:
        raise MediaInvalid("media.url: not a usable URL (too long, or spaces/control characters)")
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"}:
        raise MediaInvalid(f"media.url: must start with http:// or https://, got {parts.scheme!r}")
    if not parts.hostname:
        raise MediaInvalid("media.url: has no host name")
    return url


def _key(value: object, prefix: str | None) -> str:
    if not isinstance(value, str) or not value:
        raise MediaInvalid(f"media.key: expected the object's key, got {value!r}")
    if value.lower().startswith(("s3://", "http://", "https://")):
        raise MediaInvalid(
            "media.key: give only the key in the bucket (e.g. whatsapp/media/card.jpg); "
            "for a web address use url"
        )
    if value.startswith("/") or value.endswith("/"):
        raise MediaInvalid("media.key: a key neither starts nor ends with / (whatsapp/media/x.jpg)")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or _CONTROL.search(value):
        raise MediaInvalid("media.key: not a usable key (too long, or control characters)")
    if any(part in {".", "..", ""} for part in value.split("/")):
        raise MediaInvalid("media.key: no empty, . or .. parts")
    if prefix and not value.startswith(prefix):
        raise MediaInvalid(f"media.key: must be under {prefix} (where media is kept)")
    return value


def _caption(value: object, kind: MediaKind) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise MediaInvalid(f"media.caption: expected text, got {type(value).__name__}")
    if kind in {MediaKind.AUDIO, MediaKind.VOICE}:
        raise MediaInvalid(f"media.caption: WhatsApp shows no caption with {kind.value}")
    if len(value) > MAX_CAPTION_CHARS:
        raise MediaInvalid(
            f"media.caption: {len(value)} characters; WhatsApp allows {MAX_CAPTION_CHARS}"
        )
    return value


def _file_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise MediaInvalid(f"media.fileName: expected a file name, got {value!r}")
    if len(value) > MAX_FILE_NAME_CHARS or _CONTROL.search(value) or "/" in value or "\\" in value:
        raise MediaInvalid("media.fileName: a plain name such as card.pdf (no / or \\)")
    return value.strip()


def _declared_mime(value: object, kind: MediaKind) -> str | None:
    if value is None:
        return None
    mime = value.split(";")[0].strip().lower() if isinstance(value, str) else ""
    if not _MIME.fullmatch(mime):
        raise MediaInvalid(f"media.mimeType: expected a type such as image/jpeg, got {value!r}")
    mime = _ALIASES.get(mime, mime)
    if kind is not MediaKind.DOCUMENT and mime not in FORMATS[kind]:
        raise MediaInvalid(f"media.mimeType: {mime} is not {_article(kind)} ({_takes(kind)})")
    return mime


def _clean_hint(hint: str | None) -> str:
    mime = (hint or "").split(";")[0].strip().lower()
    return mime if _MIME.fullmatch(mime) else "application/octet-stream"


def _article(kind: MediaKind) -> str:
    return {
        MediaKind.IMAGE: "an image",
        MediaKind.VIDEO: "a video",
        MediaKind.AUDIO: "audio",
        MediaKind.VOICE: "a voice note",
        MediaKind.DOCUMENT: "a document",
    }[kind]


def _takes(kind: MediaKind) -> str:
    return (
        "WhatsApp takes "
        + ", ".join(sorted(FORMATS[kind]))
        + (" with Opus" if kind is MediaKind.VOICE else "")
    )
