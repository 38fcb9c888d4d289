"""`python -m wasched.health` as a real process: start-up errors, --check, no secrets in the log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.services import ServiceProcess
from wasched.cli.servers import NatsServer, free_port

SECRET = "tok-8f3a1c9e77"


def test_a_bad_setting_stops_it_with_one_line_naming_the_variable() -> None:
    env = {**os.environ, "HEALTH_PORT": "70000", "HEALTH_TOKEN": SECRET}
    result = subprocess.run(
        [sys.executable, "-m", "wasched.health"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HEALTH_PORT" in lines[0], result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_runs_answers_check_and_never_logs_the_token(nats_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "NATS_URL": nats_url,
        "HEALTH_PORT": str(port),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_TOKEN": SECRET,
        "LOG_LEVEL": "DEBUG",
    }
    probe = [sys.executable, "-m", "wasched.health", "--check"]
    proc = ServiceProcess("health", env, tmp_path / "health.log").start()
    try:
        proc.wait_log("Uvicorn running on", timeout=40)
        assert subprocess.run(probe, env={**os.environ, **env}, timeout=30).returncode == 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            visit = client.get("/", params={"token": SECRET})
            assert (visit.status_code, visit.headers["location"]) == (303, "/")
            assert client.get("/").status_code == 200  # with the session cookie it set
            assert client.get("/", params={"token": "wrong"}).status_code == 401
            assert client.get("/", headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200
        assert proc.stop() == 0
    finally:
        proc.kill()
    assert subprocess.run(probe, env={**os.environ, **env}, timeout=30).returncode == 1
    log = proc.log()
    assert "connecting to NATS" in log
    assert SECRET not in log


def test_serves_while_nats_is_away_and_connects_when_it_comes(
    nats_server_proc: NatsServer, tmp_path: Path
) -> None:
    nats_server_proc.stop()
    port = free_port()
    env = {"NATS_URL": nats_server_proc.url, "HEALTH_PORT": str(port), "HEALTH_HOST": "127.0.0.1"}
    proc = ServiceProcess("health", env, tmp_path / "health.log").start()
    try:
        proc.wait_log("Uvicorn running on", timeout=40)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/ping").text == "pong"
            assert client.get("/health").status_code == 503
            assert "not connected to NATS" in client.get("/").text
            assert 'component="nats"} 0.0' in client.get("/metrics").text
            nats_server_proc.start()
            proc.wait_log("listening on NATS", timeout=30)
            assert 'component="nats"} 1.0' in client.get("/metrics").text
        assert proc.stop() == 0
    finally:
        proc.kill()
    assert proc.log().count("NATS: ") == 1, "one line for the outage, not one per retry"


def test_a_public_bind_without_a_token_is_refused_with_one_line() -> None:
    """Whoever reaches an open status page can scan its QR and take the account."""
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        env = {**os.environ, "HEALTH_HOST": host, "HEALTH_PORT": str(free_port())}
        env.pop("HEALTH_TOKEN", None)
        try:
            result = subprocess.run(
                [sys.executable, "-m", "wasched.health"],
                env=env,
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"health started serving on {host} without a token") from None
        assert result.returncode == 2, result.stdout + result.stderr
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert len(lines) == 1, lines
        assert f"HEALTH_HOST={host}" in lines[0] and "HEALTH_TOKEN" in lines[0]
