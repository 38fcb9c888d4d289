"""Helpers for tests that run the sender as a real child process on a real nats-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import BaseModel

from tests.support.services import ServiceProcess
from wasched.common import topology
from wasched.common.events import DueMessage, Heartbeat, SendRequest

M = TypeVar("M", bound=BaseModel)
PHONE = "447957189696"
FAULTY_MODULE = "tests.support.faulty"


def sender_env(nats_url: str, tmp_path: Path, **extra: object) -> dict[str, str]:
    """Fast, quiet limits: each test turns on the safety guard it is about."""
    env = {
        "NATS_URL": nats_url,
        "WHATSAPP_TRANSPORT": "dryrun",
        "DRYRUN_MODE": "record",  # each test owns its NATS: record like the real run
        "DRYRUN_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "SENDER_JOURNAL": str(tmp_path / "journal.jsonl"),
        "SEND_MIN_GAP_SECONDS": "0",
        "SEND_JITTER_SECONDS": "0",
        "SEND_MAX_PER_HOUR": "0",
        "SEND_MAX_PER_DAY": "0",
        "SEND_SAME_TEXT_MAX_RECIPIENTS": "0",
        "LOOKUP_MIN_GAP_SECONDS": "0",
        "LOOKUP_MAX_PER_HOUR": "0",
        "STATUS_INTERVAL_SECONDS": "0.5",
        "SENDER_ACK_WAIT_SECONDS": "2",
        "SENDER_LIVENESS_SECONDS": "3",
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "text",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sender_process(
    nats_url: str, tmp_path: Path, name: str = "sender", *, faulty: bool = False, **extra: object
) -> ServiceProcess:
    env = sender_env(nats_url, tmp_path, **extra)
    if faulty:
        env.setdefault("FAULTY_CALLS", str(tmp_path / "calls.jsonl"))
    return ServiceProcess(
        "sender", env, tmp_path / f"{name}.log", module=FAULTY_MODULE if faulty else None
    )


class Senders:
    """Sender processes of one test (killed at the end), sharing its outbox and journal."""

    def __init__(self, nats_url: str, tmp_path: Path) -> None:
        self.nats_url, self.tmp_path = nats_url, tmp_path
        self.started: list[ServiceProcess] = []

    def start(
        self, name: str = "sender", *, faulty: bool = False, wait: bool = True, **extra: object
    ) -> ServiceProcess:
        proc = sender_process(self.nats_url, self.tmp_path, name, faulty=faulty, **extra).start()
        self.started.append(proc)
        if wait:
            proc.wait_log("sender started", timeout=30)
        return proc

    def kill_all(self) -> None:
        for proc in self.started:
            proc.kill()


@pytest.fixture
def senders(nats_url: str, tmp_path: Path) -> Iterator[Senders]:
    group = Senders(nats_url, tmp_path)
    yield group
    group.kill_all()


def write_script(tmp_path: Path, script: dict[str, list[str]]) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    return str(path)


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outbox(tmp_path: Path) -> list[dict[str, Any]]:
    return jsonl(tmp_path / "outbox.jsonl")


def calls(tmp_path: Path, kind: str, key: str | None = None) -> list[dict[str, Any]]:
    """What the faulty transport was asked to do (`send`, `lookup`, `typing`)."""
    return [
        c
        for c in jsonl(tmp_path / "calls.jsonl")
        if c["call"] == kind and (key is None or key in (c.get("id"), c.get("jid")))
    ]


class Collected(list[M]):
    """Every message seen on a subject, parsed; `for_id` filters by message id."""

    def for_id(self, message_id: str) -> list[M]:
        return [item for item in self if getattr(item, "id", None) == message_id]


async def collect(nc: NATS, subject: str, model: type[M], *, stream: bool) -> Collected[M]:
    seen: Collected[M] = Collected()

    async def on_msg(msg: Msg) -> None:
        seen.append(model.model_validate_json(msg.data))

    if stream:
        await nc.jetstream().subscribe(subject, cb=on_msg, ordered_consumer=True)
    else:
        await nc.subscribe(subject, cb=on_msg)
    return seen


async def heartbeats(nc: NATS) -> Collected[Heartbeat]:
    return await collect(nc, topology.heartbeat_subject("sender"), Heartbeat, stream=False)


def due(
    message_id: str,
    to: str = PHONE,
    late: float = 0.0,
    text: str = "hello",
    version: str | None = None,
) -> DueMessage:
    when = datetime.now(UTC) - timedelta(seconds=late)
    return DueMessage(id=message_id, to=to, message=text, scheduled_time=when, version=version)


async def publish_due(js: JetStreamContext, message: DueMessage) -> bool:
    """Publish like the poller does; True when JetStream stored it (not a duplicate)."""
    key = f"{message.id}:{message.version}" if message.version else message.id
    ack = await js.publish(
        topology.DUE, message.to_json(), headers=topology.msg_id_header("due", key)
    )
    return not ack.duplicate


async def publish_send(js: JetStreamContext, message_id: str, text: str = "hello") -> None:
    """A `wasched.send` request as another system publishes it (its id as `Nats-Msg-Id`)."""
    await js.publish(
        topology.SEND,
        SendRequest(id=message_id, to=PHONE, message=text).to_json(),
        headers=topology.msg_id_header("send", message_id),
    )


async def backlog(js: JetStreamContext) -> tuple[int, int]:
    """(not yet delivered, delivered and not acked) over the sender's two consumers."""
    waiting = held = 0
    for durable, subject in (
        (topology.SENDER_DUE, topology.DUE),
        (topology.SENDER_SEND, topology.SEND),
    ):
        info = await js.consumer_info(topology.stream_of(subject), durable)
        waiting, held = waiting + (info.num_pending or 0), held + (info.num_ack_pending or 0)
    return waiting, held


async def drained(js: JetStreamContext) -> bool:
    return await backlog(js) == (0, 0)
