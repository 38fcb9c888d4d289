"""The benchmarks' polling baseline (bench/baseline.py) sends through the real dryrun transport."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from bench.baseline import PollingBaseline

from tests.conftest import TEST_BUCKET
from tests.support.sending import jsonl
from wasched.cli.servers import S3Server


async def test_one_poll_sends_what_is_due_and_marks_it_sent(
    moto: S3Server, prefix: str, tmp_path: Path
) -> None:
    client = boto3.client(
        "s3", endpoint_url=moto.endpoint, region_name="us-east-1",
        aws_access_key_id=moto.access_key, aws_secret_access_key=moto.secret_key,
    )  # fmt: skip
    key = f"{prefix}scheduled.json"
    due = {"id": "b1", "to": "447957189696", "message": "hi", "status": "pending"}
    later = {**due, "id": "b2", "scheduledTime": "2999-01-01T00:00:00.000Z"}
    doc = {"messages": [{**due, "scheduledTime": "2025-01-01T00:00:00.000Z"}, later]}
    client.put_object(Bucket=TEST_BUCKET, Key=key, Body=json.dumps(doc).encode())
    baseline = PollingBaseline(client, TEST_BUCKET, key, tmp_path / "outbox.jsonl")
    assert await baseline.poll_once() == 1
    assert [(line["id"], line["message"]) for line in jsonl(tmp_path / "outbox.jsonl")] == [
        ("b1", "hi")
    ]
    stored = json.loads(client.get_object(Bucket=TEST_BUCKET, Key=key)["Body"].read())
    assert [m["status"] for m in stored["messages"]] == ["sent", "pending"]
