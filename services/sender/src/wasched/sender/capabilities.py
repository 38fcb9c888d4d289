"""Which media types this sender can send, and why not.

neonize 0.5.2 runs `ffprobe` (the duration of audio, voice notes and video) and
`ffmpeg` (the thumbnail of a video) as subprocesses; images (Pillow) and documents
need neither. neonize only warns once at connect, and a missing tool otherwise shows
up as an obscure error in the middle of a send. The sender says it at start-up
instead, and fails such messages before anything is sent (see docs/media.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from wasched.common.media import MediaKind

NEEDS: dict[MediaKind, tuple[str, ...]] = {
    MediaKind.IMAGE: (),
    MediaKind.VIDEO: ("ffprobe", "ffmpeg"),
    MediaKind.AUDIO: ("ffprobe",),
    MediaKind.VOICE: ("ffprobe",),
    MediaKind.DOCUMENT: (),
}
_WHY = {"ffprobe": "its length", "ffmpeg": "its thumbnail"}


def unavailable_media(
    transport: str, which: Callable[[str], str | None] = shutil.which
) -> dict[MediaKind, str]:
    """Media types that cannot be sent with `transport`, each with the reason (empty: all
    can). The dryrun transport hands nothing to neonize, so it needs no tools."""
    if transport != "neonize":
        return {}
    missing = {tool for tool in ("ffprobe", "ffmpeg") if which(tool) is None}
    reasons = {}
    for kind, tools in NEEDS.items():
        lacking = [tool for tool in tools if tool in missing]
        if lacking:
            needs = " and ".join(f"{tool} ({_WHY[tool]})" for tool in lacking)
            reasons[kind] = f"{kind.value} needs {needs} on PATH; install ffmpeg"
    return reasons


def startup_lines(unavailable: dict[MediaKind, str]) -> list[str]:
    """What the sender logs at start-up (one line per type it cannot send)."""
    if not unavailable:
        return ["media: every type can be sent (image, video, audio, voice, document)"]
    return [f"media: cannot send {reason}" for reason in unavailable.values()]
