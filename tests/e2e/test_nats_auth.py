"""Authenticated NATS end to end: each real service runs with only its own NATS user.

The nats-server runs with the configuration `wasched init` writes. The poller,
sender (dryrun) and health service each get only their own seed file; another
system, as `client`, schedules a message and follows its outcome. The server
must refuse nothing any of them did: a missing permission (say, for a KV bucket
added later) shows up here as a violation in the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from nats.aio.msg import Msg

from tests.conftest import service_env
from tests.support.auth import SecuredNats, secured_nats  # noqa: F401  (fixture)
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually, eventually_sync
from wasched.cli.servers import S3Server, free_port
from wasched.common import topology
from wasched.common.clock import utcnow
from wasched.common.events import Outcome, Reply, ScheduleRequest

pytestmark = pytest.mark.timeout(110)

READY = {"poller": "active: polling", "sender": "sender started", "health": "listening on NATS"}


def _outbox_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["id"] for line in path.read_text().splitlines() if line}


async def test_each_service_works_with_only_its_own_credentials(
    secured_nats: SecuredNats,  # noqa: F811
    moto: S3Server,
    prefix: str,
    tmp_path: Path,
) -> None:
    base = service_env(moto, prefix, secured_nats.url, tmp_path, POLL_INTERVAL_SECONDS=2)
    base.pop("LOG_LEVEL")  # INFO: the logs stay short
    health_port = free_port()
    procs: dict[str, ServiceProcess] = {}

    def start(service: str, **extra: object) -> ServiceProcess:
        env = {**base, **secured_nats.env(service), **{k: str(v) for k, v in extra.items()}}
        procs[service] = ServiceProcess(service, env, tmp_path / f"{service}.log").start()
        return procs[service]

    try:
        start("poller").wait_log(READY["poller"], timeout=40)  # it declares the topology
        start("sender").wait_log(READY["sender"], timeout=40)
        start("health", HEALTH_PORT=health_port).wait_log(READY["health"], timeout=40)

        message_id = f"auth-{uuid.uuid4().hex[:8]}"
        outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        async with secured_nats.connect("client") as nc:

            async def on_outcome(msg: Msg) -> None:
                await outcomes.put(Outcome.model_validate_json(msg.data))

            await nc.subscribe(topology.OUTCOME, cb=on_outcome)
            inbox = nc.new_inbox()
            answers = await nc.subscribe(inbox, max_msgs=1)
            request = ScheduleRequest(
                id=message_id,
                to="+44 7957 189696",
                message="scheduled by another system",
                scheduled_time=utcnow() + timedelta(seconds=3),
            )
            ack = await nc.jetstream().publish(
                topology.SCHEDULE,
                request.to_json(),
                headers={"Nats-Msg-Id": f"schedule:{message_id}", topology.REPLY_HEADER: inbox},
            )
            assert ack.stream == topology.IN_STREAM
            answer = Reply.model_validate_json((await answers.next_msg(timeout=20)).data)
            assert answer.ok, answer.error

            async def sent() -> Outcome | None:
                outcome = await outcomes.get()
                return outcome if outcome.id == message_id else None

            outcome = await eventually(sent, timeout=30, what="the outcome of the message")
        assert outcome.status == "sent"
        assert message_id in _outbox_ids(tmp_path / "outbox.jsonl")

        with httpx.Client(base_url=f"http://127.0.0.1:{health_port}", timeout=5) as http:
            healthy = eventually_sync(
                lambda: http.get("/health").status_code == 200, timeout=30, what="/health 200"
            )
        assert healthy

        for service in ("poller", "sender"):  # the container HEALTHCHECK, with the same env
            probe = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "wasched.common.probe", "heartbeat", service],
                env={**procs[service].env, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert probe.returncode == 0, probe.stdout + probe.stderr

        for service in ("health", "sender", "poller"):
            assert procs.pop(service).stop() == 0
        assert secured_nats.violations() == []
        assert secured_nats.errors["client"] == []
    finally:
        for proc in procs.values():
            with contextlib.suppress(AssertionError, OSError):
                proc.stop(timeout=15)
