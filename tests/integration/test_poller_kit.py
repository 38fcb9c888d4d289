"""Helpers shared by the poller's integration tests (this module holds no tests).

The poller runs as a real child process (`python -m wasched.poller`); the
tests play the web UI (plain S3 GET/PUT) and the sender (they watch
`wasched.due` and publish outcomes themselves).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tests.conftest import TEST_BUCKET, service_env
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import ledger, topology
from wasched.common.clock import format_utc
from wasched.common.events import DueMessage, Event, Heartbeat, Outcome
from wasched.common.ledger import LedgerEntry
from wasched.common.messages import Status

PHONE = "447957189696"


def message(ident: str, at: datetime, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": ident,
        "to": PHONE,
        "contactName": "Reem",
        "message": f"text of {ident}",
        "scheduledTime": format_utc(at),
        "status": "pending",
        "createdAt": "2025-12-22T22:15:00.000Z",
        "createdFrom": "web",
        "sentAt": None,
        "error": None,
    }
    raw.update(fields)
    return raw


def utcnow() -> datetime:
    return datetime.now(UTC)


class WebUi:
    """Another writer of the schedule object: plain GET and PUT, as the web UI does."""

    def __init__(self, server: S3Server, prefix: str) -> None:
        self.client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
        )
        self.key = f"{prefix}scheduled.json"

    def put(self, messages: list[dict[str, Any]]) -> None:
        self.put_bytes(json.dumps({"messages": messages}, indent=2).encode())

    def put_bytes(self, body: bytes) -> None:
        self.client.put_object(Bucket=TEST_BUCKET, Key=self.key, Body=body)

    def delete(self) -> None:
        self.client.delete_object(Bucket=TEST_BUCKET, Key=self.key)

    def get_bytes(self) -> tuple[bytes, str]:
        got = self.client.get_object(Bucket=TEST_BUCKET, Key=self.key)
        return got["Body"].read(), got["ETag"]

    def messages(self) -> list[dict[str, Any]]:
        return json.loads(self.get_bytes()[0])["messages"]

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {m["id"]: m for m in self.messages()}

    def edit(self, change: Any) -> None:
        """Read-modify-write with If-Match, retrying on 412 like a careful writer."""
        for _ in range(50):
            body, etag = self.get_bytes()
            data = json.loads(body)
            change(data["messages"])
            try:
                self.client.put_object(
                    Bucket=TEST_BUCKET,
                    Key=self.key,
                    Body=json.dumps(data, indent=2).encode(),
                    IfMatch=etag,
                )
                return
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 412:
                    raise
        raise AssertionError("the web UI's write kept conflicting")


@dataclass
class Poller:
    proc: ServiceProcess

    def log(self) -> str:
        return self.proc.log()

    async def wait_log(self, text: str, timeout: float = 30.0, times: int = 1) -> None:
        await eventually(
            lambda: self.log().count(text) >= times or self.proc._died(),
            timeout,
            what=f"{text!r} x{times} in poller log",
        )
        assert self.log().count(text) >= times, f"poller exited:\n{self.log()[-3000:]}"

    def stop(self) -> int:
        return self.proc.stop()

    def kill(self) -> None:
        self.proc.kill()


def poller_process(
    s3: S3Server,
    prefix: str,
    nats_url: str,
    tmp_path: Path,
    name: str = "poller",
    **env: object,
) -> ServiceProcess:
    settings = {"POLL_INTERVAL_SECONDS": 0.5, "SCHEDULE_HORIZON_SECONDS": 3600, **env}
    return ServiceProcess(
        "poller",
        service_env(s3, prefix, nats_url, tmp_path, **settings),
        tmp_path / f"{name}.log",
    )


async def start_poller(
    s3: S3Server, prefix: str, nats_url: str, tmp_path: Path, name: str = "poller", **env: object
) -> Poller:
    poller = Poller(poller_process(s3, prefix, nats_url, tmp_path, name, **env).start())
    try:
        await poller.wait_log("active:")
    except BaseException:
        poller.kill()  # never leave a process behind a failed start
        raise
    return poller


@contextlib.asynccontextmanager
async def running_poller(
    s3: S3Server, prefix: str, nats_url: str, tmp_path: Path, name: str = "poller", **env: object
) -> AsyncIterator[Poller]:
    poller = await start_poller(s3, prefix, nats_url, tmp_path, name, **env)
    try:
        yield poller
    finally:
        if poller.proc._died():
            poller.kill()
        else:
            poller.stop()


@dataclass
class Watch:
    """Every message published on a subject (core subscription: sees deduplicated repeats too)."""

    got: list[tuple[datetime, Msg]] = field(default_factory=list)

    @classmethod
    async def start(cls, nc: NATS, subject: str) -> Watch:
        watch = cls()

        async def on_msg(msg: Msg) -> None:
            watch.got.append((utcnow(), msg))

        await nc.subscribe(subject, cb=on_msg)
        await nc.flush()
        return watch

    def ids(self) -> list[str]:
        return [DueMessage.model_validate_json(m.data).id for _, m in self.got]

    def heartbeats(self) -> list[Heartbeat]:
        return [Heartbeat.model_validate_json(m.data) for _, m in self.got]


async def stored_due(js: JetStreamContext) -> list[tuple[DueMessage, datetime]]:
    """What the stream holds on wasched.due, with the server's receive time."""
    return [
        (DueMessage.model_validate_json(m.data), m.metadata.timestamp)
        for m in await stream_messages(js, topology.DUE)
    ]


async def stream_messages(js: JetStreamContext, subject: str) -> list[Msg]:
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE)
    sub = await js.pull_subscribe(subject, stream=topology.STREAM, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        return await sub.fetch(pending, timeout=5) if pending else []
    finally:
        await sub.unsubscribe()


def dues(watch: Watch, ident: str) -> list[tuple[DueMessage, dict[str, str]]]:
    """The hand-overs of one id seen on wasched.due, with their headers, in order."""
    found = []
    for _, msg in watch.got:
        due = DueMessage.model_validate_json(msg.data)
        if due.id == ident:
            found.append((due, dict(msg.headers or {})))
    return found


async def claim_as_sender(js: JetStreamContext, due: DueMessage) -> ledger.Claim:
    """Play the sender's first step: claim exactly the version this hand-over carries."""
    ledger_kv, _ = await topology.declare(js)
    return await ledger.claim(
        ledger_kv, due.id, jid=f"{PHONE}@s.whatsapp.net", version=due.version, holder="test"
    )


async def settle_sent(js: JetStreamContext, due: DueMessage, claim: ledger.Claim) -> Outcome:
    """Play the sender's last step for a claim it won: record `sent`, publish the outcome."""
    ledger_kv, _ = await topology.declare(js)
    outcome = Outcome(
        id=due.id,
        status=Status.SENT,
        sent_at=SENT_AT,
        wa_message_id=f"WA-{due.id}",
        version=due.version,
    )
    await ledger.settle(ledger_kv, due.id, LedgerEntry.from_outcome(outcome), claim.revision)
    await publish(js, topology.OUTCOME, outcome, f"outcome:{due.id}:sent")
    return outcome


async def publish(js: JetStreamContext, subject: str, event: Event, msg_id: str) -> None:
    await js.publish(subject, event.to_json(), headers={"Nats-Msg-Id": msg_id})


SENT_AT = datetime(2025, 12, 24, 10, 0, 2, 311000, tzinfo=UTC)


async def report_sent(js: JetStreamContext, ident: str) -> Outcome:
    """Play the sender: claim the id in the ledger, settle it as sent, publish the outcome."""
    ledger_kv, _ = await topology.declare(js)
    outcome = Outcome(id=ident, status=Status.SENT, sent_at=SENT_AT, wa_message_id=f"WA-{ident}")
    claim = await ledger.claim(ledger_kv, ident, jid=f"{PHONE}@s.whatsapp.net")
    await ledger.settle(ledger_kv, ident, LedgerEntry.from_outcome(outcome), claim.revision)
    await publish(js, topology.OUTCOME, outcome, f"outcome:{ident}:sent")
    return outcome


def at_offset(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)
