"""Every NATS name wasched uses, and their idempotent declaration."""

from __future__ import annotations

import contextlib
import re

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

STREAM = "WASCHED"
DUE = "wasched.due"
FIRE = "wasched.fire"
SEND = "wasched.send"
SCHEDULE = "wasched.schedule"
CANCEL = "wasched.cancel"
OUTCOME = "wasched.outcome"
RECEIPT = "wasched.receipt"
SCHED_PREFIX = "wasched.sched."
SENDER_STATUS = "wasched.status.sender"
HEARTBEAT_PREFIX = "wasched.heartbeat."
PAIR_REQUEST = "wasched.pair"
POLLER_TERM = "wasched.poller.term"
"""One message per takeover (`Nats-TTL: never`): the active poller's term. Everything the
poller publishes expects it as the subject's last sequence, so an old leader's publishes
are refused by the server once a new leader has started its term."""

REPLY_HEADER = "Wasched-Reply-To"
"""JetStream answers a request's reply subject with its PubAck, so callers that want
wasched's own `{ok, error}` answer name an inbox in this header instead."""

# Durable pull consumers, one per (service, subject).
POLLER_FIRE = "poller-fire"
POLLER_OUTCOME = "poller-outcome"
POLLER_RECEIPT = "poller-receipt"
POLLER_SCHEDULE = "poller-schedule"
POLLER_CANCEL = "poller-cancel"
SENDER_DUE = "sender-due"
SENDER_SEND = "sender-send"
HEALTH_OUTCOME = "health-outcome"
HEALTH_RECEIPT = "health-receipt"

LEDGER_BUCKET = "wasched-ledger"
LEASE_BUCKET = "wasched-lease"
POLLER_LEASE_KEY = "poller"
"""The key in `LEASE_BUCKET` held by the one active poller."""
WA_ID_BUCKET = "wasched-waid"
"""WhatsApp message id → our message id, so receipts can be reported by our id (sender)."""

DUPLICATE_WINDOW_SECONDS = 15 * 60
_SAFE_KEY = re.compile(r"[A-Za-z0-9_\-=]{1,200}")
STREAM_SUBJECTS = [
    DUE,
    f"{SCHED_PREFIX}*",
    FIRE,
    SEND,
    SCHEDULE,
    CANCEL,
    OUTCOME,
    RECEIPT,
    POLLER_TERM,
]


def heartbeat_subject(service: str) -> str:
    return f"{HEARTBEAT_PREFIX}{service}"


def schedule_subject(message_id: str) -> str:
    """One subject per id; ids may hold characters NATS forbids in tokens, so hex-encode."""
    return SCHED_PREFIX + message_id.encode().hex()


def ledger_key(message_id: str) -> str:
    """KV keys allow few characters: plain ids stay readable, others are hex under `h.`."""
    if _SAFE_KEY.fullmatch(message_id):
        return message_id
    return "h." + message_id.encode().hex()


def msg_id_header(kind: str, message_id: str) -> dict[str, str]:
    return {"Nats-Msg-Id": f"{kind}:{message_id}"}


def due_msg_id(message_id: str, version: str | None, again: int = 0) -> str:
    """`due:<id>:<version>`; a repeated hand-over of the same version gets `.<n>` so that the
    duplicate window does not drop it (the earlier one may have been refused by a gate)."""
    if version is None:
        return f"due:{message_id}"
    return f"due:{message_id}:{version}" + (f".{again}" if again else "")


_DUE_ID = re.compile(r"due:(?P<id>.+):(?P<version>[0-9a-f]{16})(?:\.\d+)?")


def parse_due_msg_id(msg_id: str) -> tuple[str, str | None] | None:
    """(message id, version) of a `due:` Nats-Msg-Id; version None for pre-version ids."""
    if not msg_id.startswith("due:"):
        return None
    found = _DUE_ID.fullmatch(msg_id)
    if found:
        return found["id"], found["version"]
    return msg_id.removeprefix("due:"), None


def stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=STREAM_SUBJECTS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        allow_msg_schedules=True,
        allow_msg_ttl=True,
        max_age=30 * 86400,
        num_replicas=replicas,
    )


async def declare(js: JetStreamContext, replicas: int = 1) -> tuple[KeyValue, KeyValue]:
    """Create or update the stream and buckets; safe to run at every start of every service.

    Replicas are never reduced: one service started without `NATS_REPLICAS` must not
    scale a clustered stream down to a single copy.
    """
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        with contextlib.suppress(BadRequestError):
            await js.add_stream(stream_config(replicas))
    else:
        current = info.config.num_replicas or 1
        await js.update_stream(stream_config(max(replicas, current)))
    ledger = await _bucket(js, LEDGER_BUCKET, history=5, replicas=replicas)
    lease = await _bucket(js, LEASE_BUCKET, history=1, replicas=replicas)
    return ledger, lease


async def _bucket(js: JetStreamContext, name: str, *, history: int, replicas: int) -> KeyValue:
    with contextlib.suppress(BucketNotFoundError):
        return await js.key_value(name)
    return await js.create_key_value(
        KeyValueConfig(bucket=name, history=history, replicas=replicas, storage=StorageType.FILE)
    )
