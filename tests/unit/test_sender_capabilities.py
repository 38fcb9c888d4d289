"""Which media types the sender can send, from what is on PATH."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from wasched.common.media import MediaKind
from wasched.sender.capabilities import startup_lines, unavailable_media


def only(*tools: str):
    return lambda name: f"/usr/bin/{name}" if name in tools else None


def test_with_ffmpeg_and_ffprobe_everything_can_be_sent() -> None:
    assert unavailable_media("neonize", only("ffmpeg", "ffprobe")) == {}
    assert startup_lines({}) == [
        "media: every type can be sent (image, video, audio, voice, document)"
    ]


def test_without_either_only_images_and_documents() -> None:
    missing = unavailable_media("neonize", only())
    assert set(missing) == {MediaKind.VIDEO, MediaKind.AUDIO, MediaKind.VOICE}
    assert missing[MediaKind.VIDEO] == (
        "video needs ffprobe (its length) and ffmpeg (its thumbnail) on PATH; install ffmpeg"
    )
    assert startup_lines(missing)[2] == (
        "media: cannot send voice needs ffprobe (its length) on PATH; install ffmpeg"
    )


def test_ffprobe_alone_is_enough_for_audio_but_not_video() -> None:
    assert set(unavailable_media("neonize", only("ffprobe"))) == {MediaKind.VIDEO}


@pytest.mark.parametrize("tools", [(), ("ffprobe",)])
def test_dryrun_needs_no_tools(tools: tuple[str, ...]) -> None:
    assert unavailable_media("dryrun", only(*tools)) == {}


def test_it_looks_on_the_real_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = tmp_path / "ffprobe"
    probe.write_text("#!/bin/sh\n")
    probe.chmod(probe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert set(unavailable_media("neonize")) == {MediaKind.VIDEO}
