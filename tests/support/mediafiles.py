"""Small real media files for tests, and putting them into the test bucket."""

from __future__ import annotations

import io

import boto3
from PIL import Image

from tests.conftest import TEST_BUCKET
from wasched.cli.servers import S3Server

OGG_OPUS = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + b"\x00" * 200
"""The start of an Ogg/Opus file: enough for the type check (dryrun needs no ffprobe)."""
PDF = b"%PDF-1.4\n" + b"0" * 200


def jpeg(size: int = 64, quality: int = 95) -> bytes:
    """A noise picture: it does not compress, so `size` decides the byte count."""
    out = io.BytesIO()
    Image.effect_noise((size, size), 80).convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def put(server: S3Server, key: str, body: bytes) -> None:
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    ).put_object(Bucket=TEST_BUCKET, Key=key, Body=body)
