"""`wasched schedule add` options for repeating, local-time and media messages.

    wasched schedule add --to 447957189696 --message "Happy birthday!" \\
        --at 2026-12-24T09:00 --tz Europe/London --repeat FREQ=YEARLY --media ./card.jpg

The fields are checked with the same code the poller uses (`read_kinds`), so what
the CLI accepts the poller accepts. A local file is checked (type, WhatsApp's size
limit) before it is uploaded beside the schedule, to `<MEDIA_KEY_PREFIX><hash>-<name>`
(default `{S3_PREFIX}media/`): the key names the content, so uploading the same file
twice writes the same object. `wasched send` takes the media options too (not
`--repeat`/`--skip`: a send request goes now, once).
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from wasched.cli.outgoing import NO_TEXT, InputError
from wasched.common.clock import format_utc
from wasched.common.kinds import Kinds, read_kinds
from wasched.common.localtime import load_zone
from wasched.common.media import DEFAULT_LIMITS, FORMATS, ContentMismatch, MediaKind, content_mime
from wasched.common.messages import MessageInvalid
from wasched.common.settings import Settings
from wasched.common.sniff import HEAD_BYTES, sniff

_FLAGS = {
    "timezone": "--tz",
    "scheduledTime": "--at",
    "repeat": "--repeat",
    "skip": "--skip",
    "media": "--media",
    "linkPreview": "--link-preview",
    "message": "--message",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(RuntimeError):
    """The media file could not be stored in the bucket."""


@dataclass(frozen=True, slots=True)
class Upload:
    key: str
    data: bytes
    mime: str


@dataclass(frozen=True, slots=True)
class KindPlan:
    fields: dict[str, Any] = field(default_factory=dict)
    """To add to the `ScheduleRequest` (`timezone`, `repeat`, `skip`, `media`, `linkPreview`)."""
    upload: Upload | None = None
    kinds: Kinds | None = None


def add_arguments(parser: argparse.ArgumentParser, *, schedule: bool = True) -> None:
    """The options of `schedule add` (`schedule=False`: those of `send`, no repeat/skip)."""
    if schedule:
        parser.add_argument(
            "--repeat", help="repeat by an RFC 5545 rule, e.g. FREQ=YEARLY or FREQ=WEEKLY;BYDAY=MO"
        )
        parser.add_argument(
            "--skip",
            action="append",
            default=[],
            help="leave out one occurrence: a local date (2026-12-31) or a time; repeatable",
        )
    parser.add_argument("--media", help="attach a file (uploaded to the bucket) or an http(s) URL")
    parser.add_argument(
        "--media-type",
        choices=[kind.value for kind in MediaKind],
        help="default: from the file (a voice note must say voice)",
    )
    parser.add_argument("--file-name", help="the name a document is shown with")
    parser.add_argument(
        "--link-preview", action="store_true", help="show a preview of the first link"
    )


def plan_kinds(
    args: argparse.Namespace, *, message: str, at: datetime, zone_name: str, media_prefix: str
) -> KindPlan:
    """The new fields for one `schedule add` (or `send`), checked; the file to upload, if any.

    A series records its zone (`--tz`, else `DISPLAY_TIMEZONE`) so it keeps its wall-clock
    time across clock changes; `--at` stays the instant of the first occurrence.
    `media_prefix` is `Settings.media_prefix` (`MEDIA_KEY_PREFIX`, default `{S3_PREFIX}media/`)."""
    fields: dict[str, Any] = {}
    repeat, skip = getattr(args, "repeat", None), getattr(args, "skip", None)
    if repeat:
        fields.update(timezone=zone_name, repeat=repeat)
    if skip:
        fields["skip"] = list(skip)
    if args.link_preview:
        fields["linkPreview"] = True
    upload = None
    if args.media:
        media, upload = _media(args, media_prefix)
        fields["media"] = media
    raw = {"scheduledTime": format_utc(at), "message": message, **fields}
    try:
        kinds = read_kinds(raw, load_zone(zone_name), media_key_prefix=media_prefix)
    except MessageInvalid as exc:
        raise InputError(_as_flags(exc.reason)) from None
    return KindPlan(fields=fields, upload=upload, kinds=kinds)


def plan_for(
    args: argparse.Namespace, settings: Settings, at: datetime, zone_name: str
) -> KindPlan:
    """`plan_kinds` for the CLI's own options and settings; a file to upload needs S3."""
    if args.message is None and not args.media:
        raise InputError(NO_TEXT)
    plan = plan_kinds(
        args,
        message=args.message or "",
        at=at,
        zone_name=zone_name,
        media_prefix=settings.media_prefix,
    )
    if plan.upload is not None and settings.s3_access_key_id is None and not settings.s3_endpoint:
        raise InputError(
            "--media: S3 is not configured to upload the file: set S3_ENDPOINT, S3_BUCKET and "
            "the keys (for the local stack: --env-file .data/local.env), or give an http(s) URL"
        )
    return plan


def _media(args: argparse.Namespace, prefix: str) -> tuple[dict[str, Any], Upload | None]:
    source: str = args.media
    entry: dict[str, Any] = {}
    if args.file_name:
        entry["fileName"] = args.file_name
    if urlsplit(source).scheme.lower() in {"http", "https"}:
        kind = MediaKind(args.media_type) if args.media_type else _kind_of_name(source)
        return {"type": kind.value, "url": source, **entry}, None
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError(f"--media: no such file: {source}")
    kind = MediaKind(args.media_type) if args.media_type else None
    limit = max(DEFAULT_LIMITS.values()) if kind is None else DEFAULT_LIMITS[kind]
    if path.stat().st_size > limit:
        raise InputError(f"--media: {path.name} is {path.stat().st_size:,} bytes; over {limit:,}")
    data = path.read_bytes()
    kind = kind or _kind_of_content(data[:HEAD_BYTES])
    if len(data) > DEFAULT_LIMITS[kind]:
        raise InputError(
            f"--media: {path.name} is {len(data):,} bytes; WhatsApp takes {kind.value} "
            f"up to {DEFAULT_LIMITS[kind]:,}"
        )
    try:
        mime = content_mime(kind, None, data[:HEAD_BYTES], mimetypes.guess_type(path.name)[0])
    except ContentMismatch as exc:
        raise InputError(f"--media: {path.name}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()[:16]
    name = _SAFE_NAME.sub("_", path.name)[-100:] or "file"
    key = f"{prefix}{digest}-{name}"
    if kind is MediaKind.DOCUMENT:
        entry.setdefault("fileName", path.name)
    return {"type": kind.value, "key": key, **entry}, Upload(key=key, data=data, mime=mime)


def _kind_of_content(head: bytes) -> MediaKind:
    found = sniff(head)
    mime = found.mime if found else ""
    for kind in (MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.AUDIO):
        if mime in FORMATS[kind]:
            return kind
    return MediaKind.DOCUMENT


def _kind_of_name(url: str) -> MediaKind:
    mime = mimetypes.guess_type(PurePosixPath(urlsplit(url).path).name)[0] or ""
    mime = {"audio/x-m4a": "audio/mp4", "audio/mp3": "audio/mpeg", "video/3gp": "video/3gpp"}.get(
        mime, mime
    )
    for kind in (MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.AUDIO):
        if mime in FORMATS[kind]:
            return kind
    return MediaKind.DOCUMENT


def _as_flags(reason: str) -> str:
    """`repeat: BYDAY: …` → `--repeat: BYDAY: …` (the names the user typed)."""
    head, sep, rest = reason.partition(":")
    name = head.split(".")[0].split("[")[0].strip()
    return f"{_FLAGS[name]}:{rest}" if sep and name in _FLAGS else reason


async def upload(settings: Settings, item: Upload) -> None:
    """Store the file beside the schedule (the same bucket and credentials)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from wasched.common.store import s3_client

    try:
        async with s3_client(settings) as s3:
            await s3.put_object(
                Bucket=settings.s3_bucket, Key=item.key, Body=item.data, ContentType=item.mime
            )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise UploadError(f"--media: S3 refused the upload of {item.key} ({code})") from None
    except (BotoCoreError, OSError) as exc:
        raise UploadError(f"--media: S3 unreachable: {exc}") from None
