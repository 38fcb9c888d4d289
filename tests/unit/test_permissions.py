"""The role → permission table (pure), as docs/security.md states it."""

from __future__ import annotations

import pytest

from wasched.common import topology
from wasched.common.permissions import (
    ADMIN,
    CLIENT,
    HEALTH,
    KV,
    POLLER,
    ROLES,
    SENDER,
    SERVICES,
    inbox,
    permissions,
)


def _subjects(role: str) -> tuple[set[str], set[str]]:
    perms = permissions(role)
    assert perms.publish is not None and perms.subscribe is not None
    return set(perms.publish), set(perms.subscribe)


def test_client_may_publish_requests_and_read_outcomes_receipts_and_its_inbox_only() -> None:
    publish, subscribe = _subjects(CLIENT)
    assert publish == {topology.SEND, topology.SCHEDULE, topology.CANCEL}
    assert subscribe == {topology.OUTCOME, topology.RECEIPT, "_INBOX.client.>"}


def test_every_restricted_role_has_a_non_empty_allow_list() -> None:
    """An empty allow list restricts nothing (measured): every role must name something."""
    for role in ROLES:
        perms = permissions(role)
        if role == ADMIN:
            assert perms.publish is None and perms.subscribe is None
            continue
        assert perms.publish and perms.subscribe, role


@pytest.mark.parametrize(
    ("subject", "publishers"),
    [
        (topology.DUE, {POLLER}),
        (f"{topology.SCHED_PREFIX}*", {POLLER}),
        (topology.SENDER_STATUS, {SENDER}),
        (topology.heartbeat_subject("sender"), {SENDER}),
        (topology.heartbeat_subject("poller"), {POLLER}),
        (topology.RECEIPT, {SENDER}),
        (topology.OUTCOME, {POLLER, SENDER}),
        (topology.FIRE, set()),  # only the server's schedules write here
    ],
)
def test_who_may_publish_what(subject: str, publishers: set[str]) -> None:
    restricted = [role for role in ROLES if role != ADMIN]
    assert {role for role in restricted if subject in _subjects(role)[0]} == publishers


def test_only_the_poller_may_create_update_or_purge_streams() -> None:
    """Other services may at most configure the KV buckets they own alone (the sender's)."""
    for role in (SENDER, HEALTH, CLIENT):
        publish, _ = _subjects(role)
        owned = {f"KV_{bucket}" for bucket, grants in KV.items() if set(grants) == {role}}
        managing = {
            s
            for s in publish
            if (".STREAM.UPDATE." in s and s.rsplit(".", 1)[1] not in owned)
            or ".STREAM.PURGE." in s
        }
        creating = {s for s in publish if ".STREAM.CREATE.WASCHED" in s}
        assert not managing and not creating, role
        assert not {s for s in publish if ".STREAM.DELETE." in s}, role
    publish, _ = _subjects(POLLER)
    assert f"$JS.API.STREAM.UPDATE.{topology.IN_STREAM}" in publish
    assert not {s for s in publish if ".STREAM.DELETE." in s}


def test_kv_watch_permissions_include_flow_control() -> None:
    """Without `$JS.FC.KV_<bucket>.>` a large watch stalls (measured at 255 entries)."""
    publish, _ = _subjects(POLLER)
    assert f"$JS.FC.KV_{topology.LEDGER_BUCKET}.>" in publish


def test_each_role_reads_replies_only_under_its_own_inbox() -> None:
    for role in (*SERVICES, CLIENT):
        _, subscribe = _subjects(role)
        assert {s for s in subscribe if s.startswith("_INBOX.")} == {f"{inbox(role)}.>"}


def test_consumers_are_granted_to_their_owner_on_the_stream_of_their_subject() -> None:
    publish, _ = _subjects(SENDER)
    assert f"$JS.API.CONSUMER.MSG.NEXT.{topology.IN_STREAM}.{topology.SENDER_SEND}" in publish
    assert f"$JS.API.CONSUMER.MSG.NEXT.{topology.STREAM}.{topology.SENDER_DUE}" in publish
    health, _ = _subjects(HEALTH)
    assert not {s for s in health if topology.SENDER_DUE in s}


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown NATS role 'root'"):
        permissions("root")
