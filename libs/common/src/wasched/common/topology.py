"""Every NATS name wasched uses, and their idempotent declaration."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from wasched.common import streams

STREAM = "WASCHED"
"""Internal subjects; `allow_msg_schedules`, so only wasched's own services may publish here."""
IN_STREAM = "WASCHED_IN"
"""Requests other systems may publish. No message schedules: a `Nats-Schedule-Target`
header can only reach subjects of its own stream, so none can land on `wasched.due`."""
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
SENDERS_BUCKET = "wasched-senders"
"""One key per running sender instance, refreshed every few seconds and expiring with the
bucket's max age: a claim whose holder has no key here is held by a dead sender."""
ACCOUNT_BUCKET = "wasched-account"
"""The WhatsApp account's safety state (sender): `pace` (recent sends and lookups, the last
temporary ban, recent texts) and `replaced` (another client took the session)."""
ACCOUNT_PACE_KEY = "pace"
ACCOUNT_REPLACED_KEY = "replaced"
LOOKUP_BUCKET = "wasched-lookups"
"""`is_on_whatsapp` answers by recipient (sender): the JID WhatsApp knows, or not on WhatsApp;
entries expire with the bucket's max age."""
TAKE_OVER_REQUEST = "wasched.takeover"
"""Core request-reply: the operator takes the WhatsApp session back after "replaced"."""

REHEARSAL_PREFIX = "wasched.rehearsal."
REHEARSAL_SECONDS = 86400.0
"""How long a rehearsal's ledger remembers what it rehearsed: a rehearsal restarted within a
day does not repeat itself; one a day later judges the schedule afresh."""

DUPLICATE_WINDOW_SECONDS = 15 * 60
MAX_AGE_SECONDS = 30 * 86400
STREAM_MAX_BYTES = 1 << 30
"""Only wasched's services write here; the cap keeps the disk from filling all the same."""
IN_STREAM_MAX_BYTES = 256 << 20
"""A flood of requests is refused once this much is stored (discard new), never written
over stored requests, and cannot fill the disk."""
_SAFE_KEY = re.compile(r"[A-Za-z0-9_\-=]{1,200}")
IN_SUBJECTS = [SEND, SCHEDULE, CANCEL]
REQUEST_CONSUMERS = {SENDER_SEND: SEND, POLLER_SCHEDULE: SCHEDULE, POLLER_CANCEL: CANCEL}
"""Durables on the request subjects; round 1 kept them (and the subjects) on `STREAM`."""


@dataclass(frozen=True, slots=True)
class Lane:
    """Where a run keeps what it hands over and what it records: the real lane, or the
    rehearsal lane of a dry run over a schedule it does not own.

    The two share no subject a consumer reads, no durable, no `Nats-Msg-Id` (the duplicate
    window would drop a real publish after a rehearsed one), no lease, no term and no bucket:
    nothing a rehearsal leaves in NATS is read by a real run, and the reverse.
    """

    rehearsal: bool
    due: str
    fire: str
    outcome: str
    sched_prefix: str
    term: str
    lease_key: str
    ledger_bucket: str
    account_bucket: str
    lookup_bucket: str
    poller_fire: str
    poller_outcome: str
    sender_due: str
    msg_id_prefix: str = ""

    def schedule_subject(self, message_id: str) -> str:
        """One subject per id; ids may hold characters NATS forbids in tokens, so hex-encode."""
        return self.sched_prefix + message_id.encode().hex()

    def msg_id_header(self, kind: str, message_id: str) -> dict[str, str]:
        return {"Nats-Msg-Id": f"{self.msg_id_prefix}{kind}:{message_id}"}

    def due_msg_id(self, message_id: str, version: str | None, again: int = 0) -> str:
        return self.msg_id_prefix + due_msg_id(message_id, version, again)

    def parse_due_msg_id(self, msg_id: str) -> tuple[str, str | None] | None:
        """(message id, version) of this lane's hand-over ids; None for any other id."""
        if not msg_id.startswith(self.msg_id_prefix):
            return None
        return parse_due_msg_id(msg_id.removeprefix(self.msg_id_prefix))

    @property
    def subjects(self) -> list[str]:
        return [self.due, f"{self.sched_prefix}*", self.fire, self.outcome, self.term]


REAL = Lane(
    rehearsal=False,
    due=DUE,
    fire=FIRE,
    outcome=OUTCOME,
    sched_prefix=SCHED_PREFIX,
    term=POLLER_TERM,
    lease_key=POLLER_LEASE_KEY,
    ledger_bucket=LEDGER_BUCKET,
    account_bucket=ACCOUNT_BUCKET,
    lookup_bucket=LOOKUP_BUCKET,
    poller_fire=POLLER_FIRE,
    poller_outcome=POLLER_OUTCOME,
    sender_due=SENDER_DUE,
)
REHEARSAL = Lane(
    rehearsal=True,
    due=f"{REHEARSAL_PREFIX}due",
    fire=f"{REHEARSAL_PREFIX}fire",
    outcome=f"{REHEARSAL_PREFIX}outcome",
    sched_prefix=f"{REHEARSAL_PREFIX}sched.",
    term=f"{REHEARSAL_PREFIX}term",
    lease_key="poller-rehearsal",
    ledger_bucket="wasched-rehearsal-ledger",
    account_bucket="wasched-rehearsal-account",
    lookup_bucket="wasched-rehearsal-lookups",
    poller_fire="poller-rehearsal-fire",
    poller_outcome="poller-rehearsal-outcome",
    sender_due="sender-rehearsal-due",
    msg_id_prefix="rehearsal-",
)
"""Requests from other systems (`wasched.send`, `.schedule`, `.cancel`) and receipts have no
rehearsal lane: a rehearsal leaves them to the real run."""


def lane(rehearsal: bool) -> Lane:
    return REHEARSAL if rehearsal else REAL


STREAM_SUBJECTS = [DUE, f"{SCHED_PREFIX}*", FIRE, OUTCOME, RECEIPT, POLLER_TERM]
STREAM_SUBJECTS += REHEARSAL.subjects


def stream_of(subject: str) -> str:
    """The stream that holds `subject`."""
    return IN_STREAM if subject in IN_SUBJECTS else STREAM


def heartbeat_subject(service: str) -> str:
    return f"{HEARTBEAT_PREFIX}{service}"


def schedule_subject(message_id: str) -> str:
    """One subject per id (the real lane's)."""
    return REAL.schedule_subject(message_id)


def ledger_key(message_id: str) -> str:
    """KV keys allow few characters: plain ids stay readable, others are hex under `h.`."""
    if _SAFE_KEY.fullmatch(message_id):
        return message_id
    return "h." + message_id.encode().hex()


def ledger_message_id(key: str) -> str:
    """The message id of a ledger key (`ledger_key` undone)."""
    if key.startswith("h."):
        return bytes.fromhex(key[2:]).decode()
    return key


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
        allow_msg_ttl=True,  # the poller's term is kept for good (`Nats-TTL: never`)
        max_age=MAX_AGE_SECONDS,
        max_bytes=STREAM_MAX_BYTES,
        discard=DiscardPolicy.OLD,  # NATS refuses `discard new` with message schedules
        num_replicas=replicas,
    )


def in_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=IN_STREAM,
        subjects=IN_SUBJECTS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        allow_msg_schedules=False,
        max_age=MAX_AGE_SECONDS,
        max_bytes=IN_STREAM_MAX_BYTES,
        discard=DiscardPolicy.NEW,
        num_replicas=replicas,
    )


async def declare(
    js: JetStreamContext, replicas: int = 1, lane: Lane | None = None
) -> tuple[KeyValue, KeyValue]:
    """Create, update or migrate the streams and buckets; safe at every start of every service.

    Returns the lane's ledger (the real one by default; a rehearsal's forgets after
    `REHEARSAL_SECONDS`) and the lease bucket.

    It reads first and writes only what is missing or differs, so a service whose NATS
    user may not manage streams passes when the poller has declared them, and waits
    while it has not (docs/security.md). Replicas are never reduced: one service
    started without `NATS_REPLICAS` must not scale a clustered stream down.
    """
    await streams.converge(
        js, stream_config(replicas), in_stream_config(replicas), REQUEST_CONSUMERS
    )
    ledger = await _bucket(js, LEDGER_BUCKET, history=5, replicas=replicas)
    lease = await _bucket(js, LEASE_BUCKET, history=1, replicas=replicas)
    if lane is not None and lane.rehearsal:
        ledger = await bucket(js, lane.ledger_bucket, ttl=REHEARSAL_SECONDS, replicas=replicas)
    return ledger, lease


async def deployed_replicas(js: JetStreamContext, asked: int) -> int:
    """Replicas for a bucket a service creates: what it was told (`NATS_REPLICAS`), or more
    when the deployment's main stream has more. A service started without the setting in a
    cluster must not create a single-copy bucket that dies with its node."""
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        return asked
    return max(asked, info.config.num_replicas or 1)


async def _bucket(js: JetStreamContext, name: str, *, history: int, replicas: int) -> KeyValue:
    with contextlib.suppress(BucketNotFoundError):
        return await js.key_value(name)
    replicas = await deployed_replicas(js, replicas)
    config = KeyValueConfig(
        bucket=name, history=history, replicas=replicas, storage=StorageType.FILE
    )

    async def create() -> KeyValue:
        try:
            return await asyncio.wait_for(js.create_key_value(config), streams.WRITE_SECONDS)
        except BadRequestError:  # created meanwhile by another service
            return await js.key_value(name)

    return await streams.patiently(f"create the KV bucket {name}", create)


async def bucket(
    js: JetStreamContext,
    name: str,
    *,
    ttl: float | None = None,
    max_bytes: int | None = None,
    replicas: int = 1,
) -> KeyValue:
    """Open a history-1 bucket, creating it if needed, with entries expiring after `ttl`.

    With `max_bytes` the bucket is a cache: when full, the oldest entries make room (KV
    buckets refuse new writes by default). A changed `ttl` or `max_bytes` is applied to an
    existing bucket's stream (`KV_<name>`), so a setting change takes effect; so are more
    replicas (`deployed_replicas`), never fewer.
    """
    replicas = await deployed_replicas(js, replicas)
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=name, history=1, ttl=ttl, replicas=replicas, storage=StorageType.FILE
        )
        with contextlib.suppress(BadRequestError):  # created by another instance meanwhile
            await js.create_key_value(config)
        kv = await js.key_value(name)
    info = await js.stream_info(f"KV_{name}")
    wanted = (ttl or 0.0, max_bytes or -1, DiscardPolicy.OLD if max_bytes else DiscardPolicy.NEW)
    current = (info.config.max_age or 0.0, info.config.max_bytes or -1, info.config.discard)
    have = info.config.num_replicas or 1
    if current != wanted or have < replicas:
        info.config.max_age, info.config.max_bytes, info.config.discard = wanted
        info.config.num_replicas = max(have, replicas)
        if ttl and (info.config.duplicate_window or 0) > ttl:
            info.config.duplicate_window = ttl  # the server wants it within the max age
        await js.update_stream(info.config)
    return kv
