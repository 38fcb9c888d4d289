"""The stored schedule as another writer sees it: plain GET and plain PUT, no conditions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import TEST_BUCKET
from wasched.cli.servers import S3Server


@dataclass
class DocumentClient:
    server: S3Server
    key: str
    bucket: str = TEST_BUCKET

    def __post_init__(self) -> None:
        self._client = boto3.client(
            "s3",
            endpoint_url=self.server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.server.access_key,
            aws_secret_access_key=self.server.secret_key,
            config=Config(
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
                s3={"addressing_style": "path"},
            ),
        )

    @property
    def client(self) -> Any:
        return self._client

    def get_bytes(self) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return bytes(response["Body"].read())

    def get(self) -> dict[str, Any]:
        body = self.get_bytes()
        return json.loads(body) if body else {"messages": []}

    def try_get(self) -> dict[str, Any] | None:
        """None while S3 is unreachable."""
        try:
            return self.get()
        except (BotoCoreError, ClientError):
            return None

    def put_bytes(self, body: bytes) -> None:
        self._client.put_object(
            Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/json"
        )

    def put(self, data: dict[str, Any]) -> None:
        self.put_bytes(json.dumps(data, ensure_ascii=False, indent=2).encode())

    def messages(self) -> list[dict[str, Any]]:
        return list(self.get()["messages"])
