"""The neonize transport builds and sends each kind of message with the right call, offline.

A real `NeonizeTransport` with a real `NewAClient` (real session file, nothing connects):
only the two calls into neonize's Go core that would reach WhatsApp, `Upload` and
`SendMessage`, are replaced by recorders that answer as the Go core does (serialized
`UploadReturnFunction` / `SendMessageReturnFunction`). Everything in between is neonize's
own code: `build_*_message`, `upload`, `send_message`, the protobufs. `ffprobe`/`ffmpeg`
are stand-in scripts on PATH (or absent), so nothing depends on the machine.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.mediafiles import OGG_OPUS, PDF, jpeg
from wasched.common.media import OPUS, MediaKind
from wasched.common.messages import ErrorKind
from wasched.common.recipients import Recipient
from wasched.sender.media import FetchedMedia
from wasched.sender.neonize_events import load_neonize
from wasched.sender.transport import (
    BuildError,
    LinkPreview,
    MediaContent,
    TextContent,
    TransportError,
)
from wasched.sender.whatsapp import NeonizeTransport

load_neonize()
pb: Any = importlib.import_module("neonize.proto.Neonize_pb2")
e2e: Any = importlib.import_module("neonize.proto.waE2E.WAWebProtobufsE2E_pb2")

TO = Recipient("447957189696", "s.whatsapp.net")
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 200
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + (b"\xff\xfb\x90\x64" + b"\x00" * 413) * 3
CARD = jpeg(64)


@dataclass
class FakeGo:
    """Neonize's Go core for the two calls that reach WhatsApp; the rest is the real one."""

    real: Any
    uploads: list[tuple[bytes, int]] = field(default_factory=list)
    sent: list[tuple[Any, Any]] = field(default_factory=list)
    upload_error: str = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def Upload(self, uuid: Any, data: bytes, size: int, media_type: int) -> bytes:
        self.uploads.append((bytes(data[:size]), media_type))
        if self.upload_error:
            return pb.UploadReturnFunction(Error=self.upload_error).SerializeToString()
        digest = hashlib.sha256(data).digest()
        response = pb.UploadResponse(
            url="https://mmg.whatsapp.net/x",
            DirectPath="/v/x",
            Handle="",
            MediaKey=b"k" * 32,
            FileEncSHA256=digest,
            FileSHA256=digest,
            FileLength=size,
        )
        return pb.UploadReturnFunction(UploadResponse=response).SerializeToString()

    async def SendMessage(
        self, uuid: Any, to: bytes, to_size: int, message: bytes, message_size: int
    ) -> bytes:
        jid = pb.JID.FromString(to[:to_size])
        self.sent.append((jid, e2e.Message.FromString(message[:message_size])))
        timings = pb.MessageDebugTimings(
            **dict.fromkeys(pb.MessageDebugTimings.DESCRIPTOR.fields_by_name, 0)
        )
        response = pb.SendResponse(
            ID="3EB0C0FFEE", Timestamp=1766570400, ServerID=0, DebugTimings=timings
        )
        return pb.SendMessageReturnFunction(SendResponse=response).SerializeToString()


class Listener:
    def connection_event(self, event: Any) -> None: ...

    def receipt(self, seen: Any) -> None: ...


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Any, Any]]:
    monkeypatch.setenv("PATH", str(tmp_path))  # only the stand-in tools a test puts there
    transport = NeonizeTransport(str(tmp_path / "session.sqlite3"), show_qr=False, stop_timeout=5)
    transport.prepare(Listener())
    go = FakeGo(transport.client._NewAClient__client)
    transport.client._NewAClient__client = go
    transport._live = True  # what a connected client sets; nothing connects here
    yield transport, go
    transport.client = None  # never connected: nothing to stop


def tool(folder: Path, name: str, body: str) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def tools(folder: Path) -> None:
    """ffprobe answers a length of 3.5 s; ffmpeg answers a JPEG thumbnail."""
    tool(folder, "ffprobe", 'echo \'{"format": {"duration": "3.5"}, "streams": []}\'')
    (folder / "thumb.jpg").write_bytes(jpeg(16))
    tool(folder, "ffmpeg", f"exec /bin/cat {folder / 'thumb.jpg'}")


def fetched(data: bytes, mime: str, name: str) -> FetchedMedia:
    return FetchedMedia(
        data=data,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        mime=mime,
        file_name=name,
    )


async def send(transport: Any, content: Any) -> Any:
    built = await transport.build(content)
    return await transport.send("m1", TO, built)


async def test_an_image_is_uploaded_and_sent_with_its_caption(rig: Any) -> None:
    transport, go = rig
    content = MediaContent(MediaKind.IMAGE, fetched(CARD, "image/jpeg", "card.jpg"), "Merry")
    sent = await send(transport, content)
    assert sent.wa_message_id == "3EB0C0FFEE"
    assert go.uploads == [(CARD, 0)]  # the bytes we fetched, as an image
    jid, message = go.sent[0]
    assert (jid.User, jid.Server) == ("447957189696", "s.whatsapp.net")
    image = message.imageMessage
    assert (image.caption, image.mimetype, image.fileLength) == ("Merry", "image/jpeg", len(CARD))
    assert Image.open(io.BytesIO(image.JPEGThumbnail)).size == (64, 64)


async def test_a_video_gets_its_length_and_thumbnail_from_ffprobe_and_ffmpeg(
    rig: Any, tmp_path: Path
) -> None:
    transport, go = rig
    tools(tmp_path)
    await send(transport, MediaContent(MediaKind.VIDEO, fetched(MP4, "video/mp4", "v.mp4"), "Hi"))
    video = go.sent[0][1].videoMessage
    assert (video.caption, video.mimetype, video.seconds) == ("Hi", "video/mp4", 3)
    assert video.JPEGThumbnail == (tmp_path / "thumb.jpg").read_bytes()
    assert go.uploads == [(MP4, 1)]


@pytest.mark.parametrize(
    ("kind", "data", "mime", "ptt"),
    [
        (MediaKind.AUDIO, MP3, "audio/mpeg", False),
        (MediaKind.VOICE, OGG_OPUS, OPUS, True),
    ],
)
async def test_audio_and_a_voice_note_carry_no_text_and_the_right_mimetype(
    rig: Any, tmp_path: Path, kind: MediaKind, data: bytes, mime: str, ptt: bool
) -> None:
    transport, go = rig
    tools(tmp_path)
    await send(transport, MediaContent(kind, fetched(data, mime, "a"), None))
    audio = go.sent[0][1].audioMessage
    assert (audio.PTT, audio.mimetype, audio.seconds) == (ptt, mime, 3)
    assert go.uploads == [(data, 2)]


async def test_a_document_keeps_its_name_type_and_caption(rig: Any) -> None:
    transport, go = rig
    content = MediaContent(
        MediaKind.DOCUMENT, fetched(PDF, "application/pdf", "Christmas menu.pdf"), "Tonight"
    )
    await send(transport, content)
    doc = go.sent[0][1].documentMessage
    assert (doc.fileName, doc.mimetype, doc.caption, doc.title) == (
        "Christmas menu.pdf",
        "application/pdf",
        "Tonight",
        "",
    )
    assert go.uploads == [(PDF, 3)]


async def test_a_text_is_sent_as_before_and_a_preview_as_neonize_builds_it(rig: Any) -> None:
    transport, go = rig
    await send(transport, TextContent("Ring @447957189696 today"))
    plain = go.sent[0][1].extendedTextMessage
    assert plain.text == "Ring @447957189696 today"
    assert list(plain.contextInfo.mentionedJID) == ["447957189696@s.whatsapp.net"]
    assert go.uploads == []

    thumb = jpeg(32)
    preview = LinkPreview("https://example.org/post", "Pies", "Twelve recipes", thumb, (32, 32))
    text = "Read https://example.org/post"
    await send(transport, TextContent(text, link_preview=True, preview=preview))
    ext = go.sent[1][1].extendedTextMessage
    assert (ext.text, ext.matchedText, ext.title, ext.description) == (
        text,
        "https://example.org/post",
        "Pies",
        "Twelve recipes",
    )
    assert (ext.JPEGThumbnail, ext.thumbnailWidth, ext.thumbnailDirectPath) == (thumb, 32, "/v/x")
    assert go.uploads == [(thumb, 6)]  # MediaLinkThumbnail


async def test_a_refused_upload_is_a_build_error_and_nothing_is_sent(rig: Any) -> None:
    transport, go = rig
    go.upload_error = "failed to upload: 403 Forbidden"
    with pytest.raises(BuildError) as info:
        await transport.build(MediaContent(MediaKind.IMAGE, fetched(CARD, "image/jpeg", "c")))
    assert info.value.kind is ErrorKind.MEDIA_UNAVAILABLE
    assert "uploading the image to WhatsApp's media servers failed" in info.value.reason
    assert "403 Forbidden" in info.value.reason
    assert go.sent == []


async def test_a_voice_note_without_ffprobe_fails_after_neonize_uploaded_it(rig: Any) -> None:
    """neonize uploads audio before it runs ffprobe: the file sits unreferenced on WhatsApp's
    media servers, nobody receives anything, and the message is `failed`."""
    transport, go = rig
    content = MediaContent(MediaKind.VOICE, fetched(OGG_OPUS, OPUS, "v.ogg"))
    with pytest.raises(BuildError) as info:
        await transport.build(content)
    assert info.value.kind is ErrorKind.MEDIA_UNAVAILABLE
    assert "ffprobe is not on PATH" in info.value.reason
    assert [data for data, _ in go.uploads] == [OGG_OPUS]
    assert go.sent == []


async def test_a_file_ffprobe_cannot_read_is_the_wrong_type(rig: Any, tmp_path: Path) -> None:
    transport, _ = rig
    tool(tmp_path, "ffprobe", "echo 'Invalid data found when processing input' >&2; exit 1")
    with pytest.raises(BuildError) as info:
        await transport.build(MediaContent(MediaKind.AUDIO, fetched(MP3, "audio/mpeg", "a.mp3")))
    assert info.value.kind is ErrorKind.MEDIA_TYPE
    assert "Invalid data found" in info.value.reason


async def test_a_client_that_is_not_connected_builds_nothing(rig: Any) -> None:
    transport, go = rig
    transport._live = False
    with pytest.raises(TransportError, match="not connected"):
        await transport.build(MediaContent(MediaKind.IMAGE, fetched(CARD, "image/jpeg", "c")))
    assert go.uploads == []
