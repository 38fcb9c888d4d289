"""What a file is, from its first bytes.

Only the formats WhatsApp takes as media (JPEG, PNG, WEBP; MP4, 3GP; AAC, M4A, MP3,
AMR, Ogg/Opus; PDF and ZIP-based office files as documents), plus a few it does not
take, so an error can say what was found ("an HTML page", "Ogg/Vorbis audio").
Magic numbers from the formats' specifications; a general-purpose library would
need libmagic or guess among hundreds of types.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 64
"""Enough for every check here (the Opus header sits at byte 28 of an Ogg file)."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    mime: str
    label: str
    codec: str | None = None


_PREFIXES: tuple[tuple[bytes, Sniffed], ...] = (
    (b"\xff\xd8\xff", Sniffed("image/jpeg", "a JPEG image")),
    (b"\x89PNG\r\n\x1a\n", Sniffed("image/png", "a PNG image")),
    (b"GIF87a", Sniffed("image/gif", "a GIF image")),
    (b"GIF89a", Sniffed("image/gif", "a GIF image")),
    (b"ID3", Sniffed("audio/mpeg", "MP3 audio")),
    (b"#!AMR\n", Sniffed("audio/amr", "AMR audio")),
    (b"%PDF-", Sniffed("application/pdf", "a PDF document")),
    (b"PK\x03\x04", Sniffed("application/zip", "a ZIP archive (or a .docx/.xlsx/.pptx)")),
    (b"\x1aE\xdf\xa3", Sniffed("video/webm", "WebM/Matroska video")),
    (b"fLaC", Sniffed("audio/flac", "FLAC audio")),
)
_RIFF = {
    b"WEBP": Sniffed("image/webp", "a WEBP image"),
    b"WAVE": Sniffed("audio/wav", "WAV audio"),
    b"AVI ": Sniffed("video/x-msvideo", "AVI video"),
}
_BRANDS = {
    b"M4A ": Sniffed("audio/mp4", "M4A audio"),
    b"M4B ": Sniffed("audio/mp4", "M4A audio"),
    b"qt  ": Sniffed("video/quicktime", "QuickTime (.mov) video"),
    b"heic": Sniffed("image/heic", "a HEIC image"),
    b"heix": Sniffed("image/heic", "a HEIC image"),
    b"mif1": Sniffed("image/heic", "a HEIC image"),
    b"avif": Sniffed("image/avif", "an AVIF image"),
}
_MP4 = Sniffed("video/mp4", "MP4 video")
_3GP = Sniffed("video/3gpp", "3GP video")


SNIFFABLE = frozenset(
    {found.mime for _, found in _PREFIXES}
    | {found.mime for found in _RIFF.values()}
    | {found.mime for found in _BRANDS.values()}
    | {_MP4.mime, _3GP.mime, "audio/ogg", "audio/aac", "text/html", "application/xml"}
)
"""Every type `sniff` can tell: a declared one of these must match the content."""


def sniff(head: bytes) -> Sniffed | None:
    """The format of content starting with `head` (give at least `HEAD_BYTES`), or None."""
    for prefix, found in _PREFIXES:
        if head.startswith(prefix):
            return found
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand[:3] in {b"3gp", b"3g2", b"3gg"}:
            return _3GP
        return _BRANDS.get(brand, _MP4)
    if head[:4] == b"OggS":
        return _ogg(head)
    if len(head) >= 2 and head[0] == 0xFF:
        return _mpeg_frame(head[1])
    return _markup(head)


def _ogg(head: bytes) -> Sniffed:
    if head[28:36] == b"OpusHead":
        return Sniffed("audio/ogg", "Ogg/Opus audio", codec="opus")
    if head[28:35] == b"\x01vorbis":
        return Sniffed("audio/ogg", "Ogg/Vorbis audio", codec="vorbis")
    return Sniffed("audio/ogg", "Ogg audio (not Opus)")


def _mpeg_frame(second: int) -> Sniffed | None:
    """A frame sync (11 set bits): AAC ADTS has layer bits 00, MPEG audio layers 1–3 not."""
    if second & 0xF6 == 0xF0:
        return Sniffed("audio/aac", "AAC audio")
    if second & 0xE0 == 0xE0 and second & 0x06:
        return Sniffed("audio/mpeg", "MP3 audio")
    return None


def _markup(head: bytes) -> Sniffed | None:
    """Web pages and XML: what a server sends instead of the file when something is wrong."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return Sniffed("text/html", "an HTML page")
    if text.startswith(b"<?xml"):
        return Sniffed("application/xml", "an XML document")
    return None
