"""NATS with the generated configuration: who may connect, and what `client` may do.

`client` is what other systems get: it may publish requests and follow outcomes,
nothing else. Everything here runs against a real nats-server started with the
config `wasched init` writes (tests/support/auth.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import APIError

from tests.support.auth import SecuredNats, secured_nats  # noqa: F401  (fixture)
from tests.support.waiting import eventually
from wasched.cli.natsconf import new_seed
from wasched.common import topology
from wasched.common.clock import format_utc, utcnow
from wasched.common.events import Reply
from wasched.common.requests import reply

DENIED_WAIT = 0.5
"""A denied JetStream API call is answered by nothing: nats-py times out."""


async def _declared(secured: SecuredNats) -> None:
    async with secured.connect("poller") as nc:
        await topology.declare(nc.jetstream())


async def _denied(attempt: Callable[[], Awaitable[object]]) -> bool:
    try:
        await attempt()
    except (NatsError, TimeoutError):
        return True
    return False


async def _count(nc: NATS, stream: str, subject: str) -> int:
    info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def _refused(url: str, **options: object) -> str:
    nc = NATS()
    try:
        await asyncio.wait_for(nc.connect(url, allow_reconnect=False, **options), 5)
    except NatsError as exc:
        return str(exc)
    finally:
        await nc.close()
    return "connected"


async def test_a_connection_without_credentials_is_refused_at_once(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    assert "Authorization Violation" in await _refused(secured_nats.url)


async def test_an_unknown_key_is_refused(secured_nats: SecuredNats, tmp_path: Path) -> None:  # noqa: F811
    stranger = tmp_path / "stranger.nk"
    stranger.write_bytes(new_seed())
    assert "Authorization Violation" in await _refused(secured_nats.url, nkeys_seed=str(stranger))


async def test_client_can_send_schedule_and_cancel(secured_nats: SecuredNats) -> None:  # noqa: F811
    await _declared(secured_nats)
    async with secured_nats.connect("client") as nc:
        js = nc.jetstream()
        for subject in (topology.SEND, topology.SCHEDULE, topology.CANCEL):
            ack = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": f"{subject}:1"})
            assert ack.stream == topology.IN_STREAM and not ack.duplicate
    assert secured_nats.errors["client"] == []


async def _refused_publishes(
    secured: SecuredNats, subjects: list[str], publish: Callable[[NATS, str], object]
) -> dict[str, list[bytes]]:
    """Publish as `client`, then as `admin`; return what an admin subscriber received."""
    received: dict[str, list[bytes]] = {s: [] for s in subjects}
    async with secured.connect("admin") as admin, secured.connect("client") as client:

        async def record(msg: Msg) -> None:
            received[msg.subject].append(msg.data)

        for subject in subjects:
            await admin.subscribe(subject, cb=record)
        await admin.flush()
        for subject in subjects:
            await publish(client, subject)  # type: ignore[misc]
        await client.flush()  # the server has judged every publish before it answers this
        for subject in subjects:
            await admin.publish(subject, b"admin-marker")
        await eventually(lambda: all(received.values()), what="the admin's markers")
    return received


async def test_client_cannot_publish_internal_or_status_subjects(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    subjects = [
        topology.DUE,
        topology.FIRE,
        topology.schedule_subject("m1"),
        topology.OUTCOME,
        topology.RECEIPT,
        topology.SENDER_STATUS,
        topology.heartbeat_subject("poller"),
        topology.heartbeat_subject("sender"),
        topology.PAIR_REQUEST,
    ]

    async def forge(client: NATS, subject: str) -> None:
        await client.publish(subject, b'{"forged": true}')

    received = await _refused_publishes(secured_nats, subjects, forge)
    assert received == {subject: [b"admin-marker"] for subject in subjects}
    refused = {(role, what) for role, kind, what in secured_nats.violations() if kind == "Publish"}
    assert refused == {("client", f'Subject "{subject}"') for subject in subjects}


async def test_client_cannot_get_anything_onto_due_or_fire_by_any_header(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    await _declared(secured_nats)
    past = format_utc(utcnow() - timedelta(seconds=5))
    variants = [
        {"Nats-Schedule": f"@at {past}", "Nats-Schedule-Target": target}
        for target in (topology.DUE, topology.FIRE)
    ] + [
        {"Nats-Schedule": "@every 1s", "Nats-Schedule-Target": topology.DUE},
        {"Nats-Schedule-Target": topology.FIRE},
        {"Nats-Expected-Stream": topology.STREAM},
        {"Nats-Rollup": "all"},
    ]
    async with secured_nats.connect("client") as client:
        js = client.jetstream()
        outcomes = []
        for subject in topology.IN_SUBJECTS:
            for headers in variants:
                try:
                    ack = await js.publish(subject, b'{"id": "x"}', headers=headers)
                except APIError:
                    outcomes.append("refused")
                else:
                    assert ack.stream == topology.IN_STREAM
                    outcomes.append("stored as a plain request")
        assert "refused" in outcomes  # the request stream takes no schedules at all
    async with secured_nats.connect("admin") as admin:
        # a schedule the admin may make: once it has fired, any forged one would have too
        await admin.jetstream().publish(
            topology.schedule_subject("control"),
            b"{}",
            headers={"Nats-Schedule": f"@at {past}", "Nats-Schedule-Target": topology.FIRE},
        )

        async def fired() -> bool:
            return await _count(admin, topology.STREAM, topology.FIRE) > 0

        await eventually(fired, what="the admin's schedule on wasched.fire")
        assert await _count(admin, topology.STREAM, topology.FIRE) == 1
        assert await _count(admin, topology.STREAM, topology.DUE) == 0


async def test_client_cannot_read_kv_manage_streams_consumers_or_subscribe_internals(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    await _declared(secured_nats)
    async with secured_nats.connect("admin") as admin:
        ledger = await admin.jetstream().key_value(topology.LEDGER_BUCKET)
        await ledger.put("m1", b'{"state": "sent"}')
    async with secured_nats.connect("client") as client:
        js = client.jetstream(timeout=DENIED_WAIT)
        attempts = {
            "read the ledger": lambda: js.key_value(topology.LEDGER_BUCKET),
            "get a ledger entry": lambda: client.request(
                f"$JS.API.DIRECT.GET.KV_{topology.LEDGER_BUCKET}.$KV.{topology.LEDGER_BUCKET}.m1",
                b"",
                timeout=DENIED_WAIT,
            ),
            "read the stream": lambda: js.get_msg(topology.STREAM, seq=1),
            "make a consumer": lambda: js.add_consumer(topology.STREAM, durable_name="spy"),
            "purge a stream": lambda: js.purge_stream(topology.IN_STREAM),
            "delete a stream": lambda: js.delete_stream(topology.STREAM),
            "ask for a pair code": lambda: client.request(
                topology.PAIR_REQUEST, b'{"phone": "447957189696"}', timeout=DENIED_WAIT
            ),
        }
        for what, attempt in attempts.items():
            assert await _denied(attempt), f"client could {what}"
        spy = await client.subscribe(topology.DUE)
        await client.flush()
    async with secured_nats.connect("poller") as poller:
        await poller.jetstream().publish(topology.DUE, b"{}")
    with pytest.raises(NatsError):
        await spy.next_msg(timeout=DENIED_WAIT)
    assert any(
        role == "client" and kind == "Subscription" and f'"{topology.DUE}"' in what
        for role, kind, what in secured_nats.violations()
    )
    async with secured_nats.connect("admin") as admin:
        info = await admin.jetstream().stream_info(topology.STREAM)
        assert info.state.messages == 1  # nothing purged or deleted
        names = await admin.jetstream().consumers_info(topology.STREAM)
        assert "spy" not in {c.name for c in names}


def test_no_permission_file_holds_a_seed(secured_nats: SecuredNats) -> None:  # noqa: F811
    """The server config trusts public keys only; seeds stay in their own files."""
    conf = (secured_nats.secrets / "nats-server.conf").read_text()
    assert '"SU' not in conf
    for role, key in secured_nats.keys.items():
        assert key in conf
        assert os.stat(secured_nats.seed(role)).st_mode & 0o077 == 0


async def test_a_service_that_may_not_manage_streams_waits_for_the_poller(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    async with secured_nats.connect("sender") as sender:
        waiting = asyncio.create_task(topology.declare(sender.jetstream(timeout=DENIED_WAIT)))
        await eventually(
            lambda: any(r == "sender" for r, _, _ in secured_nats.violations()),
            what="the sender's refused attempt to create the stream",
        )
        assert not waiting.done()
        await _declared(secured_nats)
        ledger, _ = await asyncio.wait_for(waiting, 10)
        assert (await ledger.status()).bucket == topology.LEDGER_BUCKET
    refused = {what for role, _, what in secured_nats.violations() if role == "sender"}
    assert refused == {f'Subject "$JS.API.STREAM.CREATE.{topology.STREAM}"'}


async def test_once_declared_every_service_declares_without_a_refusal(
    secured_nats: SecuredNats,  # noqa: F811
) -> None:
    await _declared(secured_nats)
    for role in ("sender", "health"):
        async with secured_nats.connect(role) as nc:
            await topology.declare(nc.jetstream(timeout=DENIED_WAIT))
    assert secured_nats.violations() == []


RUNNING_MD = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def _documented_python() -> str:
    section = RUNNING_MD.read_text().split("## For other systems", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_documented_python_client_gets_an_answer_as_client(
    secured_nats: SecuredNats,  # noqa: F811
    tmp_path: Path,
) -> None:
    """docs/running.md's example, run as another system would: with the `client` seed."""
    await _declared(secured_nats)
    seen: list[Msg] = []
    async with secured_nats.connect("admin") as sender:  # answers as the sender would

        async def on_send(msg: Msg) -> None:
            seen.append(msg)
            await reply(sender, msg.headers, Reply(ok=True, id="order-1234"))

        await sender.subscribe(topology.SEND, cb=on_send)
        await sender.flush()
        script = tmp_path / "client.py"
        script.write_text(_documented_python())
        env = {**os.environ, **secured_nats.env("client")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "{'ok': True, 'id': 'order-1234'}\n"
    (msg,) = seen
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "send:order-1234"
    assert msg.headers[topology.REPLY_HEADER].startswith("_INBOX.client.")
    assert secured_nats.violations() == []


async def test_the_cli_says_at_once_when_its_key_is_refused(
    secured_nats: SecuredNats,  # noqa: F811
    tmp_path: Path,
) -> None:
    """nats-py would retry a refused user for two minutes; the CLI gives one line at once."""
    stranger = tmp_path / "stranger.nk"
    stranger.write_bytes(new_seed())
    env = {**os.environ, "NATS_URL": secured_nats.url, "NATS_NKEY_SEED_FILE": str(stranger)}
    wasched = str(Path(sys.executable).parent / "wasched")
    proc = await asyncio.create_subprocess_exec(
        wasched, "send", "--to", "447957189696", "--message", "hi", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)  # not nats-py's two minutes
    assert proc.returncode == 1
    assert err.decode().splitlines() == [
        f"wasched: NATS at {secured_nats.url} refused our credentials: check "
        "NATS_NKEY_SEED_FILE (or NATS_USER/NATS_PASSWORD)"
    ]
