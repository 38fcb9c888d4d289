"""The `media` field and content checks: shape, WhatsApp's formats, sizes."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from PIL import Image

from wasched.common.media import (
    DEFAULT_LIMITS,
    MIB,
    OPUS,
    ContentMismatch,
    Media,
    MediaInvalid,
    MediaKind,
    content_mime,
    parse_limits,
    read_link_preview,
    read_media,
    redact_url,
)
from wasched.common.sniff import sniff


def picture(fmt: str) -> bytes:
    """A real file written by Pillow."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def ogg(codec: bytes) -> bytes:
    """An Ogg page header followed by the codec's identification packet (RFC 7845 / Vorbis I)."""
    page = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13"
    return page + codec + b"\x00" * 32


def ftyp(brand: bytes) -> bytes:
    return b"\x00\x00\x00\x20ftyp" + brand + b"\x00\x00\x02\x00isomiso2mp41" + b"\x00" * 16


SAMPLES: dict[str, bytes] = {
    "jpeg": picture("JPEG"),
    "png": picture("PNG"),
    "webp": picture("WEBP"),
    "gif": picture("GIF"),
    "pdf": picture("PDF"),
    "mp4": ftyp(b"isom"),
    "3gp": ftyp(b"3gp5"),
    "m4a": ftyp(b"M4A "),
    "mov": ftyp(b"qt  "),
    "opus": ogg(b"OpusHead\x01\x01"),
    "vorbis": ogg(b"\x01vorbis"),
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" + b"\x00" * 40,
    "mp3-bare": b"\xff\xfb\x90\x00" + b"\x00" * 40,
    "aac": b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 40,
    "amr": b"#!AMR\n" + b"\x00" * 40,
    "wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40,
    "zip": b"PK\x03\x04\x14\x00" + b"\x00" * 40,
    "html": b"\n<!DOCTYPE html><html><body>Not found</body></html>",
    "xml": b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>',
    "text": b"just some words",
}


@pytest.mark.parametrize(
    ("sample", "mime", "label"),
    [
        ("jpeg", "image/jpeg", "a JPEG image"),
        ("png", "image/png", "a PNG image"),
        ("webp", "image/webp", "a WEBP image"),
        ("gif", "image/gif", "a GIF image"),
        ("pdf", "application/pdf", "a PDF document"),
        ("mp4", "video/mp4", "MP4 video"),
        ("3gp", "video/3gpp", "3GP video"),
        ("m4a", "audio/mp4", "M4A audio"),
        ("mov", "video/quicktime", "QuickTime (.mov) video"),
        ("opus", "audio/ogg", "Ogg/Opus audio"),
        ("vorbis", "audio/ogg", "Ogg/Vorbis audio"),
        ("mp3", "audio/mpeg", "MP3 audio"),
        ("mp3-bare", "audio/mpeg", "MP3 audio"),
        ("aac", "audio/aac", "AAC audio"),
        ("amr", "audio/amr", "AMR audio"),
        ("wav", "audio/wav", "WAV audio"),
        ("zip", "application/zip", "a ZIP archive (or a .docx/.xlsx/.pptx)"),
        ("html", "text/html", "an HTML page"),
        ("xml", "application/xml", "an XML document"),
    ],
)
def test_sniffing_tells_the_formats_apart(sample: str, mime: str, label: str) -> None:
    found = sniff(SAMPLES[sample][:64])
    assert found is not None
    assert (found.mime, found.label) == (mime, label)


def test_unknown_content_is_not_guessed() -> None:
    assert sniff(SAMPLES["text"]) is None
    assert sniff(b"") is None


@pytest.mark.parametrize(
    ("kind", "sample", "declared", "mime"),
    [
        (MediaKind.IMAGE, "jpeg", None, "image/jpeg"),
        (MediaKind.IMAGE, "png", "image/jpeg", "image/png"),  # the content wins
        (MediaKind.IMAGE, "webp", None, "image/webp"),
        (MediaKind.VIDEO, "mp4", "video/mp4", "video/mp4"),
        (MediaKind.VIDEO, "3gp", None, "video/3gpp"),
        (MediaKind.AUDIO, "mp3", None, "audio/mpeg"),
        (MediaKind.AUDIO, "m4a", None, "audio/mp4"),
        (MediaKind.AUDIO, "mp4", None, "audio/mp4"),  # an audio-only .m4a with an isom brand
        (MediaKind.AUDIO, "aac", None, "audio/aac"),
        (MediaKind.AUDIO, "amr", None, "audio/amr"),
        (MediaKind.AUDIO, "opus", None, OPUS),
        (MediaKind.VOICE, "opus", "audio/ogg", OPUS),
        (MediaKind.DOCUMENT, "pdf", None, "application/pdf"),
        (MediaKind.DOCUMENT, "zip", "application/vnd.ms-excel", "application/vnd.ms-excel"),
        (MediaKind.DOCUMENT, "text", None, "application/octet-stream"),
        (MediaKind.DOCUMENT, "jpeg", None, "image/jpeg"),
    ],
)
def test_content_that_whatsapp_takes(
    kind: MediaKind, sample: str, declared: str | None, mime: str
) -> None:
    assert content_mime(kind, declared, SAMPLES[sample][:64]) == mime


def test_a_document_of_unknown_content_uses_the_servers_content_type() -> None:
    assert content_mime(MediaKind.DOCUMENT, None, b"a,b\n1,2\n", "text/csv; charset=utf-8") == (
        "text/csv"
    )


@pytest.mark.parametrize(
    ("kind", "sample", "declared", "message"),
    [
        (MediaKind.IMAGE, "gif", None, "the content is a GIF image, not an image (WhatsApp takes"),
        (MediaKind.IMAGE, "html", None, "the content is an HTML page, not an image"),
        (MediaKind.IMAGE, "text", None, "the content is not an image (WhatsApp takes image/jpeg"),
        (MediaKind.VIDEO, "mov", None, "the content is QuickTime (.mov) video, not a video"),
        (MediaKind.AUDIO, "wav", None, "the content is WAV audio, not audio"),
        (MediaKind.AUDIO, "vorbis", None, "Ogg/Vorbis audio; WhatsApp plays Ogg audio only with"),
        (MediaKind.VOICE, "mp3", None, "the content is MP3 audio, not a voice note"),
        (MediaKind.VOICE, "vorbis", None, "the content is Ogg/Vorbis audio; WhatsApp plays Ogg"),
        (MediaKind.DOCUMENT, "html", "application/pdf", "the content is an HTML page, not appli"),
        (MediaKind.IMAGE, "", None, "the content is empty, not an image"),
    ],
)
def test_content_that_whatsapp_does_not_take_is_named(
    kind: MediaKind, sample: str, declared: str | None, message: str
) -> None:
    head = SAMPLES.get(sample, b"")[:64]
    with pytest.raises(ContentMismatch) as err:
        content_mime(kind, declared, head)
    assert message in str(err.value)


def test_the_default_limits_are_whatsapps() -> None:
    assert DEFAULT_LIMITS == {
        MediaKind.IMAGE: 5 * MIB,
        MediaKind.VIDEO: 16 * MIB,
        MediaKind.AUDIO: 16 * MIB,
        MediaKind.VOICE: 16 * MIB,
        MediaKind.DOCUMENT: 100 * MIB,
    }


def test_limits_can_be_set_per_type() -> None:
    limits = parse_limits("video=64MiB, document=2000000, image=1.5MB")
    assert limits[MediaKind.VIDEO] == 64 * MIB
    assert limits[MediaKind.DOCUMENT] == 2_000_000
    assert limits[MediaKind.IMAGE] == 1_500_000
    assert limits[MediaKind.AUDIO] == 16 * MIB


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("photo=1MB", "'photo' is not a media type (image, video, audio, voice, document)"),
        ("video", "'video': expected TYPE=SIZE, e.g. video=16MiB"),
        ("video=lots", "'video=lots': expected TYPE=SIZE"),
        ("video=0", "'video=0': the limit must be at least 1 byte"),
    ],
)
def test_bad_limits_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_limits(text)


def media(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": "image", "key": "whatsapp/media/card.jpg"}
    raw.update(fields)
    return {k: v for k, v in raw.items() if v is not None}


def test_a_bucket_object_and_a_web_address() -> None:
    assert read_media(media(caption="Merry Christmas")) == Media(
        kind=MediaKind.IMAGE, key="whatsapp/media/card.jpg", caption="Merry Christmas"
    )
    web = read_media(
        media(
            type="document",
            key=None,
            url="https://example.org/a/menu.pdf?sig=s3cr3t",
            mimeType="Application/PDF; charset=binary",
        )
    )
    assert web.url == "https://example.org/a/menu.pdf?sig=s3cr3t"
    assert web.mime_type == "application/pdf"
    assert web.name == "menu.pdf"
    assert web.where == "https://example.org/a/menu.pdf"  # never the signature


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("card.jpg", 'media: expected an object like {"type": "image", "key": "whatsapp/media/'),
        (media(type="sticker"), "media.type: expected one of image, video, audio, voice, doc"),
        (media(type=None), "media.type: expected one of image, video, audio, voice, document"),
        (media(key=None), "media: give exactly one of url (http/https) or key (in the bucket)"),
        (media(url="https://x.org/a.jpg"), "media: give exactly one of url"),
        (media(key=None, url="ftp://x.org/a.jpg"), "media.url: must start with http:// or https"),
        (media(key=None, url="file:///etc/passwd"), "media.url: must start with http:// or"),
        (media(key=None, url="https:///a.jpg"), "media.url: has no host name"),
        (media(key=None, url="https://x.org/a b.jpg"), "media.url: not a usable URL"),
        (media(key="s3://bucket/whatsapp/media/a.jpg"), "media.key: give only the key in the"),
        (media(key="/whatsapp/media/a.jpg"), "media.key: a key neither starts nor ends with /"),
        (media(key="whatsapp/media/../scheduled.json"), "media.key: no empty, . or .. parts"),
        (media(key="whatsapp//a.jpg"), "media.key: no empty, . or .. parts"),
        (media(key="x" * 1025), "media.key: not a usable key"),
        (media(key=7), "media.key: expected the object's key, got 7"),
        (media(caption="x" * 1025), "media.caption: 1025 characters; WhatsApp allows 1024"),
        (media(caption=["a"]), "media.caption: expected text, got list"),
        (media(type="voice", caption="hi"), "media.caption: WhatsApp shows no caption with voice"),
        (media(fileName="../../x.pdf"), "media.fileName: a plain name such as card.pdf"),
        (media(fileName=""), "media.fileName: expected a file name, got ''"),
        (media(mimeType="video/mp4"), "media.mimeType: video/mp4 is not an image (WhatsApp take"),
        (media(mimeType="jpeg"), "media.mimeType: expected a type such as image/jpeg"),
        (media(type="voice", mimeType="audio/mpeg"), "media.mimeType: audio/mpeg is not a voi"),
        (media(filename="a.pdf"), "media.filename: did you mean fileName?"),
        (media(mime_type="image/png"), "media.mime_type: did you mean mimeType?"),
    ],
)
def test_bad_media_fields_are_named(raw: object, message: str) -> None:
    with pytest.raises(MediaInvalid) as err:
        read_media(raw)
    assert message in str(err.value)


def test_keys_must_be_under_the_media_prefix_when_one_is_set() -> None:
    assert read_media(media(), key_prefix="whatsapp/media/").key == "whatsapp/media/card.jpg"
    with pytest.raises(MediaInvalid, match=r"media.key: must be under whatsapp/media/"):
        read_media(media(key="whatsapp/scheduled.json"), key_prefix="whatsapp/media/")


@pytest.mark.parametrize(
    ("declared", "normalised"),
    [("image/jpg", "image/jpeg"), ("IMAGE/PNG", "image/png"), ("image/webp", "image/webp")],
)
def test_declared_types_are_normalised(declared: str, normalised: str) -> None:
    assert read_media(media(mimeType=declared)).mime_type == normalised


def test_link_preview_is_a_boolean() -> None:
    assert read_link_preview(None) is False
    assert read_link_preview(True) is True
    with pytest.raises(MediaInvalid, match="linkPreview: expected true or false, got 'yes'"):
        read_link_preview("yes")


def test_urls_lose_credentials_and_queries_in_logs() -> None:
    assert redact_url("https://user:pw@cdn.example.org:8443/x.jpg?X-Amz-Signature=abc#f") == (
        "https://cdn.example.org:8443/x.jpg"
    )
