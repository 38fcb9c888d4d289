"""Real servers and real service processes for the benchmarks.

One SeaweedFS for the whole run, behind a recording proxy. Each measured run
gets a `Cell`: its own nats-server (fresh stream, ledger and poller lease), its
own S3 prefix, its own outbox, so no run sees what an earlier one left behind,
and runs that only wait (lateness, bursts) can share the machine at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import nats
from nats.aio.client import Client as NATS

from bench.probes import cpu_seconds
from bench.proxy import RecordingProxy
from wasched.cli.servers import (
    NatsServer,
    S3Server,
    die_with_parent,
    ensure_bucket,
    free_port,
    nats_server,
)
from wasched.cli.servers import seaweed_server as _seaweed
from wasched.common.topology import SENDER_STATUS, heartbeat_subject

BUCKET = "wasched-bench"
ROOT = Path(__file__).resolve().parent.parent
THROTTLE_OFF = {
    "SEND_MIN_GAP_SECONDS": 0,
    "SEND_MAX_PER_HOUR": 0,
    "SEND_MAX_PER_DAY": 0,
    "SEND_JITTER_SECONDS": 0,
    "SEND_SAME_TEXT_MAX_RECIPIENTS": 0,
    "LOOKUP_MIN_GAP_SECONDS": 0,
    "LOOKUP_MAX_PER_HOUR": 0,
}
"""The account-safety pace of the sender, off: these benchmarks measure wasched, not the pace."""


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Stack:
    workdir: Path
    s3: S3Server
    proxy: RecordingProxy

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.s3.access_key,
            aws_secret_access_key=self.s3.secret_key,
        )

    def put(self, key: str, body: bytes) -> None:
        """Straight to S3, not through the proxy: the bench's own writes are not counted."""
        self.client().put_object(Bucket=BUCKET, Key=key, Body=body)

    def get_messages(self, key: str) -> list[dict[str, Any]]:
        body = self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return json.loads(body)["messages"]

    @asynccontextmanager
    async def cell(self, name: str) -> AsyncIterator[Cell]:
        tag = f"{name}-{uuid.uuid4().hex[:6]}"
        server = nats_server(self.workdir / tag / "nats")
        server.die_with_parent = True
        server.start()  # in this thread: the server dies with the thread that started it
        cell = Cell(self, tag, server, await nats.connect(server.url))
        try:
            yield cell
        finally:
            for svc in cell.services:
                await asyncio.to_thread(svc.stop)
            with suppress(Exception):
                await cell.nc.close()
            await asyncio.to_thread(server.stop)
            shutil.rmtree(self.workdir / tag / "nats", ignore_errors=True)


@dataclass
class Cell:
    stack: Stack
    tag: str
    nats: NatsServer
    nc: NATS
    services: list[Service] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"{self.tag}/"

    @property
    def key(self) -> str:
        return f"{self.prefix}scheduled.json"

    @property
    def outbox(self) -> Path:
        return self.stack.workdir / self.tag / "outbox.jsonl"

    def env(self, throttle: bool = False, **extra: object) -> dict[str, str]:
        """Settings for the services of this cell; the throttle is off unless asked for
        (then the product's defaults apply: nothing is set)."""
        env: dict[str, object] = {
            "NATS_URL": self.nats.url,
            "S3_ENDPOINT": self.stack.proxy.endpoint,
            "S3_ACCESS_KEY_ID": self.stack.s3.access_key,
            "S3_SECRET_ACCESS_KEY": self.stack.s3.secret_key,
            "S3_BUCKET": BUCKET,
            "S3_PREFIX": self.prefix,
            "WHATSAPP_TRANSPORT": "dryrun",
            "DRYRUN_MODE": "record",  # the cell owns its schedule: measure the real path
            "DRYRUN_OUTBOX": str(self.outbox),
            "SENDER_JOURNAL": str(self.outbox.with_name(f"{self.tag}-journal.jsonl")),
            "LOG_LEVEL": "WARNING",
            "HEALTH_PORT": free_port(),
            **({} if throttle else THROTTLE_OFF),
            **extra,
        }
        return {k: str(v) for k, v in env.items()}

    def start(self, module: str, env: dict[str, str], python: str = sys.executable) -> Service:
        """`python -m <module>` (`wasched.poller`, `bench.baseline`, ...) with `env`."""
        log_path = self.stack.workdir / self.tag / f"{module}-{uuid.uuid4().hex[:4]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if k not in THROTTLE_OFF}
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [python, "-m", module],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**clean, **env},
                cwd=ROOT,
                preexec_fn=die_with_parent,
            )
        svc = Service(module, proc, log_path)
        self.services.append(svc)
        return svc

    async def stop(self, svc: Service) -> None:
        await asyncio.to_thread(svc.stop)
        self.services.remove(svc)

    async def heartbeats(self) -> Beats:
        beats = Beats()
        await self.nc.subscribe(heartbeat_subject("poller"), cb=beats.on_message)
        return beats

    async def sender_connected(self, timeout: float = 90) -> None:
        connected = asyncio.Event()

        async def on_status(msg: Any) -> None:
            if json.loads(msg.data).get("state") == "connected":
                connected.set()

        sub = await self.nc.subscribe(SENDER_STATUS, cb=on_status)
        try:
            await asyncio.wait_for(connected.wait(), timeout)
        finally:
            await sub.unsubscribe()

    def sent_lines(self) -> list[dict[str, Any]]:
        """The dryrun outbox: one line per message handed to the (fake) WhatsApp."""
        if not self.outbox.exists():
            return []
        lines = self.outbox.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class Beats:
    """The poller's heartbeats as they arrive: when (time.time()), the watched process's CPU
    seconds at that moment (None before `pid` is set), and the details."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.history: list[Beat] = []
        self._queue: asyncio.Queue[Beat] = asyncio.Queue()

    async def on_message(self, msg: Any) -> None:
        cpu = cpu_seconds(self.pid) if self.pid is not None else None
        beat = Beat(time.time(), cpu, json.loads(msg.data).get("details", {}))
        self.history.append(beat)
        await self._queue.put(beat)

    async def next(
        self, ok: Callable[[dict[str, Any]], bool] = lambda d: True, timeout: float = 300
    ) -> Beat:
        """The next heartbeat whose details satisfy `ok`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            beat = await asyncio.wait_for(self._queue.get(), max(0.1, deadline - loop.time()))
            if ok(beat.details):
                return beat

    async def after(self, moment: float, timeout: float = 300) -> Beat:
        """The first heartbeat heard after `moment`."""
        return await self.next_where(lambda b: b.heard > moment, timeout)

    async def next_where(self, ok: Callable[[Beat], bool], timeout: float = 300) -> Beat:
        found = next((b for b in self.history if ok(b)), None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while found is None:
            await asyncio.wait_for(self._queue.get(), max(0.1, deadline - loop.time()))
            found = next((b for b in self.history if ok(b)), None)
        return found

    def before(self, moment: float) -> Beat | None:
        """The last heartbeat heard before `moment`."""
        return next((b for b in reversed(self.history) if b.heard < moment), None)


@dataclass(frozen=True, slots=True)
class Beat:
    heard: float
    cpu: float | None
    details: dict[str, Any]


@contextmanager
def stack() -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="wasched-bench-"))
    s3 = _seaweed(workdir / "s3", bucket=BUCKET)
    s3.die_with_parent = True
    s3.start(timeout=90)
    try:
        ensure_bucket(s3, BUCKET)
        with RecordingProxy(s3.endpoint) as proxy:
            yield Stack(workdir, s3, proxy)
    finally:
        s3.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def image_python(service: str) -> str:
    """An interpreter with only what the service's Docker image installs
    (`uv sync --package wasched-<service> --no-dev`), for honest footprint figures:
    the development venv holds every member's and every test tool's packages, and some
    libraries import optional extras when they find them installed."""
    target = Path(tempfile.gettempdir()) / "wasched-bench-venvs" / service
    uv = shutil.which("uv")
    command = [uv] if uv else [sys.executable, "-m", "uv"]
    subprocess.run(
        [
            *command,
            "sync",
            "--quiet",
            "--locked",
            "--no-dev",
            "--no-editable",
            "--package",
            f"wasched-{service}",
            "--reinstall-package",  # the local members, rebuilt from the current sources
            f"wasched-{service}",
            "--reinstall-package",
            "wasched-common",
        ],
        check=True,
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(target)},
    )
    return str(target / "bin" / "python")
