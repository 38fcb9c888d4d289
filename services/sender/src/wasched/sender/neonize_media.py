"""Building the neonize (0.5.2) message for a content: what `NeonizeTransport.build` does.

Media goes through neonize's own builders with **bytes** (a `str` would make neonize fetch
it itself, without limits): `build_image_message` / `build_video_message` (caption),
`build_audio_message` (`ptt=True` for a voice note), `build_document_message` (caption,
file name, mimetype). Each uploads the file to WhatsApp's media servers and returns the
`Message` that `send_message(jid, message)` then sends. The mimetype is set from the
fetched content, so a voice note says `audio/ogg; codecs=opus` (libmagic's plain
`audio/ogg` is reported delivered and never arrives; docs/media.md).

Building delivers nothing, so every failure is a `BuildError` with the `errorKind` to
report (`classify_build_error`, pure). For audio, neonize uploads *before* it runs
ffprobe: when ffprobe then fails, an encrypted file sits unreferenced on WhatsApp's media
servers (no message points to it; nobody receives anything) and the message is `failed`.
The sender checks at start-up that ffprobe is on PATH (capabilities.py), so this is left
for files ffprobe cannot read.

A text with a link preview is built here too, from the preview the sender made before the
claim (preview.py): the fields neonize's own `link_preview=True` fills, with the thumbnail
uploaded as neonize does it. The thumbnail upload has its own short bound; without it the
text keeps the title and description.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from wasched.common.media import MediaKind
from wasched.common.messages import ErrorKind
from wasched.sender.transport import BuildError, Built, Content, LinkPreview, MediaContent

log = logging.getLogger("wasched.sender.whatsapp")
THUMBNAIL_UPLOAD_SECONDS = 30.0
_YOUTUBE = re.compile(r"https?://(?:www\.|m\.)?(?:youtube\.com/|youtu\.be/)", re.IGNORECASE)
_MISSING_TOOL = re.compile(r"\b(ffprobe|ffmpeg): (?:command )?not found")
"""What /bin/sh (dash: `1: ffprobe: not found`; bash: `ffprobe: command not found`) says."""


async def build_message(client: Callable[[], Any], content: Content) -> Built:
    """`NeonizeTransport.build`: `client()` is the live client (it raises `TransportError`
    when there is none). A text without a preview stays a `str`: neonize's `send_message`
    then adds mentions exactly as before."""
    if isinstance(content, MediaContent):
        return Built(content, await build_media(client(), content))
    if content.preview is None:
        return Built(content)
    return Built(content, await build_text_with_preview(client(), content.text, content.preview))


def classify_build_error(kind: MediaKind, exc: BaseException) -> BuildError:
    """What a failed build means: a missing tool or an upload that failed is
    `media_unavailable`; a file the tools or Pillow cannot read is `media_type`."""
    from neonize.exc import NeonizeError

    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, NeonizeError):
        return BuildError(
            ErrorKind.MEDIA_UNAVAILABLE,
            f"uploading the {kind.value} to WhatsApp's media servers failed: {text}; "
            "nothing was sent",
        )
    missing = _MISSING_TOOL.search(text)
    if missing:
        return BuildError(
            ErrorKind.MEDIA_UNAVAILABLE,
            f"{missing.group(1)} is not on PATH; the sender cannot send {kind.value} "
            "(install ffmpeg); nothing was sent",
        )
    if isinstance(exc, (RuntimeError, OSError, ValueError, AttributeError)):
        return BuildError(
            ErrorKind.MEDIA_TYPE,
            f"the {kind.value} could not be read to prepare it ({text}); nothing was sent",
        )
    return BuildError(
        ErrorKind.MEDIA_UNAVAILABLE, f"preparing the {kind.value} failed: {text}; nothing was sent"
    )


async def build_media(client: Any, content: MediaContent) -> Any:
    """The neonize `Message` for a fetched media file (uploaded now); raises `BuildError`."""
    file, kind, caption = content.file, content.kind, content.caption or None
    try:
        match kind:
            case MediaKind.IMAGE:
                message = await client.build_image_message(file.data, caption=caption)
                message.imageMessage.mimetype = file.mime
            case MediaKind.VIDEO:
                message = await client.build_video_message(file.data, caption=caption)
                message.videoMessage.mimetype = file.mime
            case MediaKind.AUDIO | MediaKind.VOICE:
                ptt = kind is MediaKind.VOICE
                message = await client.build_audio_message(file.data, ptt=ptt)
                message.audioMessage.mimetype = file.mime
            case MediaKind.DOCUMENT:
                message = await client.build_document_message(
                    file.data, caption=caption, filename=file.file_name, mimetype=file.mime
                )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise classify_build_error(kind, exc) from None
    return message


async def build_text_with_preview(client: Any, text: str, preview: LinkPreview) -> Any:
    """An extended text with the preview's fields, as neonize's `link_preview=True` sends it."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        ContextInfo,
        ExtendedTextMessage,
        Message,
    )

    video = _YOUTUBE.match(preview.url) is not None
    extended = ExtendedTextMessage(
        text=text,
        matchedText=preview.url,
        title=preview.title,
        description=preview.description,
        previewType=(
            ExtendedTextMessage.PreviewType.VIDEO if video else ExtendedTextMessage.PreviewType.NONE
        ),
        contextInfo=ContextInfo(mentionedJID=client._parse_mention(text)),
    )
    if preview.thumbnail:
        await _add_thumbnail(client, extended, preview)
    return Message(extendedTextMessage=extended)


async def _add_thumbnail(client: Any, extended: Any, preview: LinkPreview) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage
    from neonize.utils.enum import MediaType

    try:
        upload = await asyncio.wait_for(
            client.upload(preview.thumbnail, MediaType.MediaLinkThumbnail),
            THUMBNAIL_UPLOAD_SECONDS,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("the link preview goes without its picture: uploading it failed (%s)", exc)
        return
    width, height = preview.thumbnail_size or (0, 0)
    extended.MergeFrom(
        ExtendedTextMessage(
            JPEGThumbnail=preview.thumbnail,
            thumbnailDirectPath=upload.DirectPath,
            thumbnailSHA256=upload.FileSHA256,
            thumbnailEncSHA256=upload.FileEncSHA256,
            mediaKey=upload.MediaKey,
            mediaKeyTimestamp=int(time.time()),
            thumbnailWidth=width,
            thumbnailHeight=height,
        )
    )
