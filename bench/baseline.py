"""BASELINE — a faithful minimal reimplementation of the system wasched replaces.

Every poll interval: GET the whole object, send every pending message whose
time has passed (through the same `dryrun` transport), PUT the whole object
back. No ETags, no conditional writes, no ledger. Used only for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wasched.common.clock import format_utc, parse_utc
from wasched.common.recipients import parse_recipient
from wasched.sender.dryrun import DryrunTransport


class PollingBaseline:
    def __init__(self, client: Any, bucket: str, key: str, outbox: Path, interval: float) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.transport = DryrunTransport(outbox)
        self.interval = interval
        self.bytes_downloaded = 0
        self.requests = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def poll_once(self) -> int:
        response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.key)
        body = response["Body"].read()
        self.requests += 1
        self.bytes_downloaded += len(body)
        data = json.loads(body)
        now = datetime.now(UTC)
        sent = 0
        for msg in data["messages"]:
            if msg.get("status") == "pending" and parse_utc(msg["scheduledTime"]) <= now:
                result = await self.transport.send(
                    msg["id"], parse_recipient(msg["to"]), msg["message"]
                )
                msg["status"], msg["sentAt"] = "sent", format_utc(result.at)
                sent += 1
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.key,
            Body=json.dumps(data, indent=2).encode(),
        )
        self.requests += 1
        return sent
