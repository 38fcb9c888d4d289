"""`--media ./card.jpg` uploads beside the schedule, and the sender's fetcher reads it back."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from pydantic import SecretStr

from tests.conftest import make_settings
from wasched.cli.kinds import Upload, UploadError, add_arguments, plan_kinds, upload
from wasched.cli.servers import S3Server
from wasched.common.media import read_media
from wasched.sender.media import open_fetcher


async def test_an_uploaded_file_is_what_the_sender_fetches(
    s3: S3Server, prefix: str, tmp_path: Path
) -> None:
    card = tmp_path / "card.png"
    Image.new("RGB", (32, 32), (250, 200, 0)).save(card, format="PNG")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plan = plan_kinds(
        parser.parse_args(["--media", str(card)]),
        message="Merry Christmas",
        at=datetime(2026, 12, 24, 9, tzinfo=UTC),
        zone_name="Europe/London",
        media_prefix=f"{prefix}media/",
    )
    assert plan.upload is not None
    settings = make_settings(s3, prefix)
    await upload(settings, plan.upload)
    await upload(settings, plan.upload)  # the same file again: the same object
    media = read_media(plan.fields["media"], key_prefix=f"{prefix}media/")
    async with open_fetcher(settings) as fetcher:
        got = await fetcher.fetch(media)
    assert got.data == card.read_bytes()
    assert got.mime == "image/png"


async def test_a_refused_upload_says_so(seaweed: S3Server, prefix: str) -> None:
    settings = make_settings(seaweed, prefix).model_copy(
        update={"s3_secret_access_key": SecretStr("wrong")}
    )
    with pytest.raises(UploadError, match=r"--media: S3 refused the upload of .*media/x\.jpg"):
        await upload(settings, Upload(key=f"{prefix}media/x.jpg", data=b"x", mime="image/jpeg"))
