"""The poller's heartbeat has its own timer, reports what it ignores, and refuses a horizon
it cannot keep (issue 11 items 10 and 11; issue 13 item 8)."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from tests.conftest import service_env
from tests.integration.test_poller_kit import (
    Poller,
    Watch,
    WebUi,
    at_offset,
    message,
    poller_process,
    running_poller,
    start_poller,
)
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from wasched.cli.servers import S3Server
from wasched.common import topology
from wasched.common.events import Heartbeat

PROBE_TIMEOUT = 12.0  # what the compose healthcheck gives the probe


def probe(nats_url: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "wasched.common.probe", "heartbeat", "poller"],
        env={"NATS_URL": nats_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT + 10,
    )
    return done.returncode, done.stdout.strip()


@pytest.mark.timeout(300)
async def test_the_container_probe_passes_at_every_check_with_the_default_poll_interval(
    moto: S3Server, prefix: str, nats_url: str, tmp_path: Path
) -> None:
    WebUi(moto, prefix).put([message("later", at_offset(86400))])
    async with running_poller(moto, prefix, nats_url, tmp_path, POLL_INTERVAL_SECONDS=60) as p:
        began = time.monotonic()
        checks: list[tuple[float, int, str]] = []
        while time.monotonic() - began < 2 * 60 + 5:  # two poll intervals and a bit
            code, said = await asyncio.to_thread(probe, nats_url)
            checks.append((time.monotonic() - began, code, said))
        assert p.log().count("loaded 1 messages") >= 2  # it did poll twice meanwhile
    failed = [c for c in checks if c[1] != 0]
    print(f"{len(checks)} probe checks over {checks[-1][0]:.0f}s, {len(failed)} failed")
    assert not failed, failed


async def test_a_standby_beats_every_few_seconds_too(
    moto: S3Server, prefix: str, nats_url: str, nc: NATS, tmp_path: Path
) -> None:
    WebUi(moto, prefix).put([message("later", at_offset(86400))])
    beats = await Watch.start(nc, topology.heartbeat_subject("poller"))
    active = await start_poller(moto, prefix, nats_url, tmp_path, "a", POLL_INTERVAL_SECONDS=60)
    standby = Poller(
        poller_process(moto, prefix, nats_url, tmp_path, "b", POLL_INTERVAL_SECONDS=60).start()
    )
    try:
        await standby.wait_log("standby:")
        began = len(beats.got)
        await asyncio.sleep(16)  # the window the probe's three retries would cover
        window = beats.got[began:]
    finally:
        standby.stop()
        active.stop()
    times = {
        flag: [
            at
            for at, m in window
            if Heartbeat.model_validate_json(m.data).details["active"] is flag
        ]
        for flag in (True, False)
    }
    for flag, seen in times.items():
        assert len(seen) >= 3, f"active={flag}: {len(seen)} heartbeats in 16 s"
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(seen)]
        # every 5 s; what the probe needs is a beat within its 12 s (a loaded machine adds)
        assert max(gaps) <= 10, f"active={flag}: gaps {gaps}"


async def test_messages_it_cannot_act_on_are_counted_by_reason_and_named_once(
    moto: S3Server, prefix: str, nats_url: str, nc: NATS, tmp_path: Path
) -> None:
    web = WebUi(moto, prefix)
    no_status = message("no-status", at_offset(-5))
    del no_status["status"]
    web.put(
        [
            no_status,
            message("capital", at_offset(-5), status="Pending"),
            message("paused", at_offset(-5), status="paused"),
            message(42, at_offset(-5)),  # type: ignore[arg-type]
            message("fine", at_offset(86400)),
        ]
    )
    beats = await Watch.start(nc, topology.heartbeat_subject("poller"))
    async with running_poller(moto, prefix, nats_url, tmp_path) as poller:
        await poller.wait_log("loaded 5 messages", times=4)
        counted = await eventually(
            lambda: [b for b in beats.heartbeats() if b.details.get("ignored")], 10
        )
        log = poller.log()
    assert counted[-1].details["ignored"] == {"no_status": 1, "unknown_status": 2, "bad_id": 1}
    assert log.count("message no-status has no status") == 1
    assert log.count("message capital has status 'Pending'") == 1
    assert log.count("message paused has status 'paused'") == 1
    assert log.count("messages[3] has id 42") == 1
    assert "statuses are lowercase" in log


def test_a_horizon_shorter_than_two_poll_intervals_is_refused(
    moto: S3Server, prefix: str, tmp_path: Path
) -> None:
    env = service_env(
        moto,
        prefix,
        "nats://127.0.0.1:1",
        tmp_path,
        POLL_INTERVAL_SECONDS="60",
        SCHEDULE_HORIZON_SECONDS="90",
    )
    proc = ServiceProcess("poller", env, tmp_path / "poller.log").start()
    assert proc.process is not None
    try:
        code = proc.process.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"poller did not exit:\n{proc.log()[-2000:]}") from None
    output = proc.log().strip()
    assert code == 2, output
    assert output.count("\n") == 0, output
    assert "SCHEDULE_HORIZON_SECONDS" in output and "POLL_INTERVAL_SECONDS" in output
