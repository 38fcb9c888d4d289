"""The poller as an operator meets it: exit codes, one-line errors, surviving a NATS restart."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nats.js import JetStreamContext

from tests.conftest import service_env
from tests.integration.test_poller_kit import (
    WebUi,
    at_offset,
    message,
    report_sent,
    running_poller,
    stored_due,
)
from tests.support.services import ServiceProcess
from tests.support.waiting import eventually
from wasched.cli.servers import NatsServer, S3Server

WRONG_SECRET = "not-the-secret-4f2a"


def run_to_exit(env: dict[str, str], tmp_path: Path, timeout: float = 60) -> tuple[int, str]:
    proc = ServiceProcess("poller", env, tmp_path / "poller.log").start()
    assert proc.process is not None
    try:
        code = proc.process.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"poller did not exit:\n{proc.log()[-2000:]}") from None
    return code, proc.log()


def test_bad_credentials_exit_non_zero_with_one_clear_line(
    seaweed: S3Server, prefix: str, nats_url: str, tmp_path: Path
) -> None:
    env = service_env(seaweed, prefix, nats_url, tmp_path, LOG_LEVEL="INFO")
    env["S3_SECRET_ACCESS_KEY"] = WRONG_SECRET
    code, output = run_to_exit(env, tmp_path)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1, output
    assert "S3 refused our credentials for bucket 'wasched-test'" in lines[0]
    assert "S3_SECRET_ACCESS_KEY" in lines[0]
    assert WRONG_SECRET not in output


def test_bad_setting_exits_2_naming_the_variable(
    seaweed: S3Server, prefix: str, tmp_path: Path
) -> None:
    env = service_env(seaweed, prefix, "nats://127.0.0.1:1", tmp_path, POLL_INTERVAL_SECONDS="0")
    code, output = run_to_exit(env, tmp_path)
    assert code == 2
    assert output.strip().count("\n") == 0
    assert "POLL_INTERVAL_SECONDS='0'" in output


async def test_keeps_working_across_a_nats_restart(
    moto: S3Server,
    prefix: str,
    nats_server_proc: NatsServer,
    nats_url: str,
    js: JetStreamContext,
    tmp_path: Path,
) -> None:
    web = WebUi(moto, prefix)
    before = message("before", at_offset(-1))
    web.put([before])
    async with running_poller(moto, prefix, nats_url, tmp_path) as poller:
        await eventually(lambda: stored_due(js), 10, what="first dispatch")
        nats_server_proc.stop()
        web.put([before, message("after", at_offset(-1))])
        await poller.wait_log("lost the connection to NATS")
        nats_server_proc.start()
        ids = await eventually(lambda: _due_ids(js), 30, what="dispatch after NATS came back")
        assert ids == ["after", "before"]
        await report_sent(js, "after")
        await eventually(lambda: web.by_id()["after"]["status"] == "sent", 30)
        assert "reconnected to NATS" in poller.log()
        assert poller.proc.process is not None and poller.proc.process.poll() is None


async def _due_ids(js: JetStreamContext) -> list[str] | None:
    try:
        ids = sorted(due.id for due, _ in await stored_due(js))
    except Exception:  # NATS still reconnecting
        return None
    return ids if len(ids) == 2 else None
