"""Who may do what on NATS: one user per role, each allowed only what it uses.

Pure: built from the names in `topology`, rendered into the server config by
`wasched.cli.natsconf`. Adding a subject, bucket or consumer is one line in the
tables below; the end-to-end test (tests/e2e/test_nats_auth.py) runs every service
with only its own user and fails on any permission the server had to refuse.

Measured facts this relies on (../shared/notes/nats-auth.md): an empty allow list
restricts nothing (so every restricted role gets a non-empty one, and `deny: [">"]`
where it needs nothing), a KV watch needs `$JS.FC.KV_<bucket>.>`, and a JetStream
publish needs only the subject plus the role's reply inbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Flag, auto

from wasched.common import topology as t

POLLER, SENDER, HEALTH, CLIENT, ADMIN = "poller", "sender", "health", "client", "admin"
ROLES = (POLLER, SENDER, HEALTH, CLIENT, ADMIN)
SERVICES = (POLLER, SENDER, HEALTH)
MANAGERS = frozenset({POLLER})
"""May create, update and migrate the streams and buckets (`topology.declare`)."""
REPLIERS = frozenset({POLLER, SENDER})
"""Answer requests on the caller's inbox (`Wasched-Reply-To`, or a core request)."""
ASKERS = (CLIENT, ADMIN)
"""Roles whose inboxes wasched answers."""


def inbox(role: str) -> str:
    """The inbox prefix a role connects with: its replies come under it, and only there."""
    return f"_INBOX.{role}"


# -- core and stream subjects: who publishes, who subscribes --------------------------------

PUBLISH: Mapping[str, frozenset[str]] = {
    t.DUE: frozenset({POLLER}),
    f"{t.SCHED_PREFIX}*": frozenset({POLLER}),
    t.POLLER_TERM: frozenset({POLLER}),  # the lease fence: one message per takeover
    t.OUTCOME: frozenset({POLLER, SENDER}),
    t.RECEIPT: frozenset({SENDER}),
    t.SEND: frozenset({CLIENT, POLLER}),  # the poller copies round-1 requests over once
    t.SCHEDULE: frozenset({CLIENT, POLLER}),
    t.CANCEL: frozenset({CLIENT, POLLER}),
    t.SENDER_STATUS: frozenset({SENDER}),
    t.heartbeat_subject(POLLER): frozenset({POLLER}),
    t.heartbeat_subject(SENDER): frozenset({SENDER}),
    t.PAIR_REQUEST: frozenset({SENDER}),  # `python -m wasched.sender pair` in its container
    # a rehearsal (a dry run over a schedule it does not own) has subjects of its own
    t.REHEARSAL.due: frozenset({POLLER}),
    f"{t.REHEARSAL.sched_prefix}*": frozenset({POLLER}),
    t.REHEARSAL.term: frozenset({POLLER}),
    t.REHEARSAL.outcome: frozenset({POLLER, SENDER}),
}
SUBSCRIBE: Mapping[str, frozenset[str]] = {
    t.OUTCOME: frozenset({CLIENT}),
    t.RECEIPT: frozenset({CLIENT}),
    t.SENDER_STATUS: frozenset({HEALTH}),
    f"{t.HEARTBEAT_PREFIX}*": frozenset({HEALTH}),
    t.heartbeat_subject(POLLER): frozenset({POLLER}),  # the container health probe
    t.heartbeat_subject(SENDER): frozenset({SENDER}),
    t.PAIR_REQUEST: frozenset({SENDER}),
    t.TAKE_OVER_REQUEST: frozenset({SENDER}),
}

# -- durable consumers: name → (role, subject); the stream follows from the subject ----------

CONSUMERS: Mapping[str, tuple[str, str]] = {
    t.POLLER_FIRE: (POLLER, t.FIRE),
    t.POLLER_OUTCOME: (POLLER, t.OUTCOME),
    t.POLLER_RECEIPT: (POLLER, t.RECEIPT),
    t.POLLER_SCHEDULE: (POLLER, t.SCHEDULE),
    t.POLLER_CANCEL: (POLLER, t.CANCEL),
    t.SENDER_DUE: (SENDER, t.DUE),
    t.SENDER_SEND: (SENDER, t.SEND),
    t.HEALTH_OUTCOME: (HEALTH, t.OUTCOME),
    t.HEALTH_RECEIPT: (HEALTH, t.RECEIPT),
    t.REHEARSAL.poller_fire: (POLLER, t.REHEARSAL.fire),
    t.REHEARSAL.poller_outcome: (POLLER, t.REHEARSAL.outcome),
    t.REHEARSAL.sender_due: (SENDER, t.REHEARSAL.due),
}


class Kv(Flag):
    READ = auto()
    WRITE = auto()
    WATCH = auto()
    CREATE = auto()
    CONFIGURE = auto()
    """Change the bucket's limits (its max age or size follows a setting)."""
    SCAN = auto()
    """Load every key in batches (a pull consumer: the poller's ledger mirror)."""
    OWN = READ | WRITE | WATCH | CREATE | CONFIGURE


KV: Mapping[str, Mapping[str, Kv]] = {
    t.LEDGER_BUCKET: {POLLER: Kv.OWN | Kv.SCAN, SENDER: Kv.READ | Kv.WRITE | Kv.WATCH},
    t.LEASE_BUCKET: {POLLER: Kv.OWN},
    t.WA_ID_BUCKET: {SENDER: Kv.OWN},
    t.SENDERS_BUCKET: {SENDER: Kv.OWN},  # each sender's liveness key; others' are read
    t.ACCOUNT_BUCKET: {SENDER: Kv.OWN},  # the account's pace, the "replaced" mark
    t.LOOKUP_BUCKET: {SENDER: Kv.OWN},  # number lookups, cached
    t.REHEARSAL.ledger_bucket: {
        POLLER: Kv.OWN | Kv.SCAN,
        SENDER: Kv.READ | Kv.WRITE | Kv.WATCH | Kv.CREATE,
    },
    t.REHEARSAL.account_bucket: {SENDER: Kv.OWN},
    t.REHEARSAL.lookup_bucket: {SENDER: Kv.OWN},
}

STREAM_READERS: Mapping[str, frozenset[str]] = {
    t.STREAM: frozenset({POLLER, SENDER}),  # get by sequence: the poller scans, the sender
}  # reads the last outcome (its send gap survives a restart)
EPHEMERAL_SCANS: Mapping[str, frozenset[str]] = {
    t.STREAM: frozenset({POLLER}),  # the poller rebuilds its book from the stream at start
}
PURGERS: Mapping[str, frozenset[str]] = {
    t.STREAM: frozenset({POLLER}),  # cancels a schedule; NATS cannot narrow it to a subject
}


@dataclass(frozen=True, slots=True)
class Permissions:
    """Allow lists; `None` means unrestricted (admin)."""

    publish: tuple[str, ...] | None
    subscribe: tuple[str, ...] | None


def permissions(role: str) -> Permissions:
    if role not in ROLES:
        raise ValueError(f"unknown NATS role {role!r} (expected one of {', '.join(ROLES)})")
    if role == ADMIN:
        return Permissions(publish=None, subscribe=None)
    publish = [subject for subject, roles in PUBLISH.items() if role in roles]
    subscribe = [subject for subject, roles in SUBSCRIBE.items() if role in roles]
    subscribe.append(f"{inbox(role)}.>")
    if role in REPLIERS:
        publish += [f"{inbox(asker)}.>" for asker in (*ASKERS, role)]
    if role in SERVICES:
        publish += _topology_info() + _consumers(role) + _buckets(role) + _streams(role)
    return Permissions(publish=tuple(dict.fromkeys(publish)), subscribe=tuple(subscribe))


def _api(*tokens: str) -> str:
    return "$JS.API." + ".".join(tokens)


def _topology_info() -> list[str]:
    """What `topology.declare` reads before it writes anything (metadata only)."""
    names = [t.STREAM, t.IN_STREAM, *(f"KV_{bucket}" for bucket in KV)]
    old = [_api("CONSUMER.INFO", t.STREAM, durable) for durable in t.REQUEST_CONSUMERS]
    return [_api("STREAM.INFO", name) for name in names] + old


def _consumers(role: str) -> list[str]:
    granted = []
    for durable, (owner, subject) in CONSUMERS.items():
        if owner != role:
            continue
        stream = t.stream_of(subject)
        granted += [
            _api("CONSUMER.DURABLE.CREATE", stream, durable),
            _api("CONSUMER.CREATE", stream, durable, subject),
            _api("CONSUMER.INFO", stream, durable),
            _api("CONSUMER.MSG.NEXT", stream, durable),
            f"$JS.ACK.{stream}.{durable}.>",
        ]
    return granted


def _buckets(role: str) -> list[str]:
    granted = []
    for bucket, grants in KV.items():
        access = grants.get(role)
        if access is None:
            continue
        stream = f"KV_{bucket}"
        if access & Kv.READ:
            granted += [_api("STREAM.MSG.GET", stream), _api("DIRECT.GET", stream, ">")]
        if access & Kv.WRITE:
            granted.append(f"$KV.{bucket}.>")
        if access & Kv.WATCH:
            granted += [
                _api("CONSUMER.CREATE", stream),
                _api("CONSUMER.CREATE", stream, ">"),
                _api("CONSUMER.INFO", stream, "*"),
                _api("CONSUMER.DELETE", stream, "*"),
                f"$JS.FC.{stream}.>",
            ]
        if access & Kv.SCAN:
            granted.append(_api("CONSUMER.MSG.NEXT", stream, "*"))
        if access & Kv.CREATE:
            granted.append(_api("STREAM.CREATE", stream))
        if access & Kv.CONFIGURE:
            granted.append(_api("STREAM.UPDATE", stream))
    return granted


def _streams(role: str) -> list[str]:
    granted = []
    if role in MANAGERS:
        for stream in (t.STREAM, t.IN_STREAM):
            granted += [_api("STREAM.CREATE", stream), _api("STREAM.UPDATE", stream)]
        for durable in t.REQUEST_CONSUMERS:  # round-1 durables, deleted once carried over
            granted.append(_api("CONSUMER.DELETE", t.STREAM, durable))
        granted.append(_api("STREAM.MSG.GET", t.STREAM))
    for stream, roles in STREAM_READERS.items():
        if role in roles:
            granted.append(_api("STREAM.MSG.GET", stream))
    for stream, roles in EPHEMERAL_SCANS.items():
        if role in roles:
            granted += [
                _api("CONSUMER.CREATE", stream),
                _api("CONSUMER.CREATE", stream, "*", ">"),
                _api("CONSUMER.INFO", stream, "*"),
                _api("CONSUMER.MSG.NEXT", stream, "*"),
                _api("CONSUMER.DELETE", stream, "*"),
            ]
    for stream, roles in PURGERS.items():
        if role in roles:
            granted.append(_api("STREAM.PURGE", stream))
    return granted


def table(roles: Iterable[str] = ROLES) -> dict[str, Permissions]:
    return {role: permissions(role) for role in roles}
