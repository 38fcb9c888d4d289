"""The test harness itself: servers and services started by a test die with the test process.

A pytest killed by CI's time limit, a Ctrl-C or an OOM kill must not leave a nats-server,
a weed or a service running (they would hold ports and disk and skew the next run). A real
pytest (alone, and with xdist workers) runs a test that starts them, writes their pids and
waits; we SIGKILL that pytest and watch every pid go.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import eventually_sync

ROOT = Path(__file__).resolve().parents[2]

INNER = """
import json, os, time
from pathlib import Path

from tests.conftest import service_env
from tests.support.services import ServiceProcess


def test_hold(nats_server_proc, seaweed, prefix, tmp_path):
    env = service_env(seaweed, prefix, nats_server_proc.url, tmp_path)
    poller = ServiceProcess("poller", env, tmp_path / "poller.log").start()
    poller.wait_log("active:", timeout=60)
    pids = {
        "nats-server": nats_server_proc.process.pid,
        "weed": seaweed.process.pid,
        "poller": poller.process.pid,
    }
    Path(os.environ["HOLD_PIDS"]).write_text(json.dumps(pids))
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its (dead) parent to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["pytest", "pytest-xdist"])
@pytest.mark.timeout(180)
def test_a_killed_pytest_leaves_no_server_or_service_behind(
    tmp_path: Path, workers: list[str]
) -> None:
    inner = tmp_path / "test_hold.py"
    inner.write_text(INNER)
    pids_file = tmp_path / "pids.json"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    argv += ["--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), *workers, str(inner)]
    log = (tmp_path / "pytest.log").open("wb")
    env = {**os.environ, "HOLD_PIDS": str(pids_file), "PYTHONPATH": str(ROOT)}
    pytest_proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        eventually_sync(
            lambda: pids_file.exists() or pytest_proc.poll() is not None,
            timeout=120,
            what="the inner test to start its servers",
        )
        assert pids_file.exists(), (tmp_path / "pytest.log").read_text()[-3000:]
        pids: dict[str, int] = json.loads(pids_file.read_text())
        assert all(alive(pid) for pid in pids.values()), pids

        pytest_proc.kill()  # SIGKILL: no teardown, no atexit, nothing but the kernel
        pytest_proc.wait(10)
        eventually_sync(
            lambda: not any(alive(pid) for pid in pids.values()),
            timeout=30,
            what=f"{pids} to die with the killed pytest",
        )
    finally:
        log.close()
        if pytest_proc.poll() is None:
            os.killpg(pytest_proc.pid, signal.SIGKILL)
        for pid in json.loads(pids_file.read_text()).values() if pids_file.exists() else ():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
