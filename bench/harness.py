"""Real servers and real service processes for the benchmarks, plus measuring helpers."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from tests.support.s3proxy import S3Proxy
from tests.support.waiting import eventually_sync

from wasched.cli.servers import (
    NatsServer,
    S3Server,
    ensure_bucket,
    free_port,
    nats_server,
    seaweed_server,
)

BUCKET = "wasched-bench"


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Stack:
    workdir: Path
    nats: NatsServer
    s3: S3Server
    proxy: S3Proxy
    services: list[Service] = field(default_factory=list)

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.s3.access_key,
            aws_secret_access_key=self.s3.secret_key,
        )

    def env(self, prefix: str, **extra: object) -> dict[str, str]:
        env = {
            "NATS_URL": self.nats.url,
            "S3_ENDPOINT": self.proxy.endpoint,
            "S3_ACCESS_KEY_ID": self.s3.access_key,
            "S3_SECRET_ACCESS_KEY": self.s3.secret_key,
            "S3_BUCKET": BUCKET,
            "S3_PREFIX": prefix,
            "WHATSAPP_TRANSPORT": "dryrun",
            "DRYRUN_OUTBOX": str(self.workdir / f"{prefix.strip('/')}-outbox.jsonl"),
            "SENDER_JOURNAL": str(self.workdir / f"{prefix.strip('/')}-journal.jsonl"),
            "SEND_MIN_GAP_SECONDS": "0",
            "SEND_MAX_PER_HOUR": "0",
            "SEND_MAX_PER_DAY": "0",
            "SEND_JITTER_SECONDS": "0",
            "SEND_SAME_TEXT_MAX_RECIPIENTS": "0",
            "LOOKUP_MIN_GAP_SECONDS": "0",
            "LOOKUP_MAX_PER_HOUR": "0",
            "LOG_LEVEL": "WARNING",
            "HEALTH_PORT": str(free_port()),
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, service: str, env: dict[str, str], python: str = sys.executable) -> Service:
        log_path = self.workdir / f"{service}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [python, "-m", f"wasched.{service}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )
        svc = Service(service, proc, log_path)
        self.services.append(svc)
        return svc

    def put_doc(self, prefix: str, messages: list[dict[str, Any]]) -> int:
        body = json.dumps({"messages": messages}, indent=2).encode()
        self.client().put_object(Bucket=BUCKET, Key=f"{prefix}scheduled.json", Body=body)
        return len(body)

    def get_doc(self, prefix: str) -> list[dict[str, Any]]:
        body = self.client().get_object(Bucket=BUCKET, Key=f"{prefix}scheduled.json")["Body"].read()
        return json.loads(body)["messages"]


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
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(target)},
    )
    return str(target / "bin" / "python")


@contextmanager
def stack() -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="wasched-bench-"))
    nats = nats_server(workdir / "nats").start()
    s3 = seaweed_server(workdir / "s3", bucket=BUCKET).start(timeout=60)
    ensure_bucket(s3, BUCKET)
    proxy = S3Proxy(s3.endpoint).__enter__()
    st = Stack(workdir, nats, s3, proxy)
    try:
        yield st
    finally:
        for svc in st.services:
            svc.stop()
        proxy.__exit__(None, None, None)
        s3.stop()
        nats.stop()


def contact(i: int) -> str:
    """One of 500 valid UK mobile numbers: real schedules repeat their contacts."""
    return f"44795{i % 500:07d}"


def message(ident: str, when: str, to: str = "447957189696") -> dict[str, Any]:
    return {
        "id": ident,
        "to": to,
        "contactName": "Bench",
        "message": f"bench {ident}",
        "scheduledTime": when,
        "status": "pending",
        "createdAt": when,
        "createdFrom": "bench",
        "sentAt": None,
        "error": None,
    }


def wait_until(check: Any, timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    return eventually_sync(check, timeout, interval, what=what)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    cuts = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else ordered * 99
    )
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": ordered[-1]}


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / ticks
