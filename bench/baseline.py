"""BASELINE — a faithful minimal reimplementation of the system wasched replaces.

Every poll interval: GET the whole object, send every pending message whose
time has passed (through the same `dryrun` transport), PUT the whole object
back. No ETags, no conditional writes, no ledger, no throttle. Used only for
comparison; runs as its own process (`python -m bench.baseline`) so the bench
measures it exactly like a wasched service: CPU, peak RSS, S3 requests.

Environment: the services' `S3_*` and `DRYRUN_OUTBOX`, plus
`BASELINE_INTERVAL_SECONDS` (default 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from wasched.common.clock import format_utc, parse_utc
from wasched.common.recipients import parse_recipient
from wasched.sender.dryrun import DryrunTransport
from wasched.sender.transport import Built, TextContent


class PollingBaseline:
    def __init__(self, client: Any, bucket: str, key: str, outbox: Path) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.transport = DryrunTransport(outbox)

    async def poll_once(self) -> int:
        body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        data = json.loads(body)
        now = datetime.now(UTC)
        sent = 0
        for msg in data["messages"]:
            if msg.get("status") == "pending" and parse_utc(msg["scheduledTime"]) <= now:
                result = await self.transport.send(
                    msg["id"], parse_recipient(msg["to"]), Built(TextContent(msg["message"]))
                )
                msg["status"], msg["sentAt"] = "sent", format_utc(result.at)
                sent += 1
        body = json.dumps(data, indent=2).encode()
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body)
        return sent


async def run(baseline: PollingBaseline, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await baseline.poll_once()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def main() -> None:
    env = os.environ
    client = boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=env["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"],
    )
    key = f"{env.get('S3_PREFIX', '')}scheduled.json"
    baseline = PollingBaseline(client, env["S3_BUCKET"], key, Path(env["DRYRUN_OUTBOX"]))
    interval = float(env.get("BASELINE_INTERVAL_SECONDS", "60"))

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await run(baseline, interval, stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
