"""What neonize 0.5.2 does with media, offline: the facts docs/media.md builds on.

A real `NewAClient` (nothing connects); only its `upload` — the call that would reach
WhatsApp's media servers — is replaced. `ffprobe` is either absent from PATH or a
stand-in script, so the tests do not depend on what the machine has installed.
"""

from __future__ import annotations

import importlib
import inspect
import io
import stat
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from wasched.common.media import OPUS
from wasched.sender.whatsapp import load_neonize

load_neonize()
client_module: Any = importlib.import_module("neonize.aioze.client")
proto: Any = importlib.import_module("neonize.proto.Neonize_pb2")

OGG_OPUS = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + b"\x00" * 200


@pytest.fixture
def client(tmp_path: Path) -> Any:
    made = client_module.NewAClient(str(tmp_path / "session.sqlite3"))
    uploads: list[bytes] = []

    async def upload(binary: bytes, media_type: Any = None) -> Any:
        uploads.append(binary)
        return proto.UploadResponse(url="https://mmg.example/x", DirectPath="/x", FileLength=1)

    made.upload = upload
    made.uploads = uploads
    return made


def fake_ffprobe(folder: Path, duration: str = "3.5") -> None:
    script = folder / "ffprobe"
    script.write_text(
        f'#!/bin/sh\necho \'{{"format": {{"duration": "{duration}"}}, "streams": []}}\'\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


async def test_an_image_needs_no_ffmpeg_and_takes_bytes_and_a_caption(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg, no ffprobe
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (0, 90, 200)).save(out, format="JPEG")
    message = await client.build_image_message(out.getvalue(), caption="Merry Christmas")
    image = message.imageMessage
    assert (image.caption, image.mimetype) == ("Merry Christmas", "image/jpeg")
    assert Image.open(io.BytesIO(image.JPEGThumbnail)).size == (200, 150)  # Pillow made it
    assert client.uploads == [out.getvalue()]


async def test_a_document_takes_our_name_and_type(client: Any) -> None:
    message = await client.build_document_message(
        b"%PDF-1.4 menu", caption="Tonight", filename="menu.pdf", mimetype="application/pdf"
    )
    doc = message.documentMessage
    assert (doc.fileName, doc.mimetype, doc.caption) == ("menu.pdf", "application/pdf", "Tonight")


async def test_audio_without_ffprobe_fails_after_the_upload(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload has happened (no message is delivered by it) when ffprobe is found missing."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="ffprobe: not found"):
        await client.build_audio_message(OGG_OPUS, ptt=True)
    assert client.uploads == [OGG_OPUS]


async def test_a_voice_note_is_ptt_but_neonize_labels_it_plain_audio_ogg(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libmagic says `audio/ogg`; WhatsApp wants `audio/ogg; codecs=opus` for voice notes,
    so the sender must set it before `send_message`."""
    fake_ffprobe(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    message = await client.build_audio_message(OGG_OPUS, ptt=True)
    audio = message.audioMessage
    assert (audio.PTT, audio.seconds, audio.mimetype) == (True, 3, "audio/ogg")
    audio.mimetype = OPUS
    assert message.audioMessage.mimetype == "audio/ogg; codecs=opus"


def test_the_calls_and_arguments_the_sender_will_use() -> None:
    client = client_module.NewAClient
    params = {
        name: list(inspect.signature(getattr(client, name)).parameters)
        for name in (
            "send_message",
            "build_image_message",
            "build_video_message",
            "build_audio_message",
            "build_document_message",
        )
    }
    assert params["send_message"][:4] == ["self", "to", "message", "link_preview"]
    assert params["build_image_message"][:3] == ["self", "file", "caption"]
    assert params["build_video_message"][:3] == ["self", "file", "caption"]
    assert params["build_audio_message"][:3] == ["self", "file", "ptt"]
    assert params["build_document_message"][:6] == [
        "self",
        "file",
        "caption",
        "title",
        "filename",
        "mimetype",
    ]


def test_neonize_warns_about_missing_ffmpeg_only_once_then_says_it_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the sender checks PATH itself (`wasched.sender.capabilities`)."""
    ffmpeg: Any = importlib.import_module("neonize.utils.ffmpeg")
    monkeypatch.setattr(ffmpeg, "_ffmpeg_checked", False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ffmpeg.check_ffmpeg_available() is False
    assert ffmpeg.check_ffmpeg_available() is True
