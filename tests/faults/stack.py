"""The system under test as separate processes: services started, killed and restarted by pid.

Every disruption (SIGKILL of a service, a server stopped) is recorded on a
`Timeline` with wall-clock times, so the invariants can tell an `interrupted`
failure caused by a crash from one that has no excuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from tests.conftest import service_env
from tests.faults.s3doc import DocumentClient
from tests.support.services import ServiceProcess
from wasched.cli.servers import S3Server
from wasched.common.document import TERMINAL
from wasched.common.events import Heartbeat
from wasched.common.topology import HEARTBEAT_PREFIX

Message = dict[str, Any]

FAST_ENV: dict[str, object] = {
    "POLL_INTERVAL_SECONDS": 1,
    "SEND_MIN_GAP_SECONDS": 0,
    "SEND_JITTER_SECONDS": 0,
    "SEND_MAX_PER_HOUR": 1_000_000,
    "SEND_MAX_PER_DAY": 0,
    "SEND_SAME_TEXT_MAX_RECIPIENTS": 0,
    "LOOKUP_MIN_GAP_SECONDS": 0,
    "LOOKUP_MAX_PER_HOUR": 0,
    "SENDER_LIVENESS_SECONDS": 3,
    "SENDER_ACK_WAIT_SECONDS": 5,
    "SENDER_SHUTDOWN_GRACE_SECONDS": 2,
    "STATUS_INTERVAL_SECONDS": 1,
    "LOG_LEVEL": "INFO",
    "DISPLAY_TIMEZONE": "Europe/London",
}
"""Short intervals so a scenario of a few hundred messages runs in well under a minute."""


@dataclass
class Disruption:
    target: str
    kind: str
    start: float
    end: float | None = None

    def finish(self) -> None:
        self.end = time.time()

    @property
    def seconds(self) -> float:
        return (self.end or time.time()) - self.start


@dataclass
class Timeline:
    events: list[Disruption] = field(default_factory=list)

    def begin(self, target: str, kind: str) -> Disruption:
        event = Disruption(target, kind, time.time())
        self.events.append(event)
        return event

    def kills(self) -> dict[str, int]:
        return dict(Counter(f"{e.target}:{e.kind}" for e in self.events))

    def starts(self, *targets: str) -> list[float]:
        """Start times of the disruptions to the given targets (prefix match)."""
        return [e.start for e in self.events if e.target.startswith(targets)]

    def outages(self) -> list[float]:
        return [round(e.seconds, 1) for e in self.events if e.kind == "outage"]


@dataclass
class Stack:
    root: Path
    s3: S3Server
    prefix: str
    nats_url: str
    env_overrides: dict[str, object] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        overrides = {**FAST_ENV, **self.env_overrides}
        self.env = service_env(self.s3, self.prefix, self.nats_url, self.root, **overrides)
        self.doc = DocumentClient(self.s3, f"{self.prefix}scheduled.json")

    @property
    def outbox(self) -> Path:
        return Path(self.env["DRYRUN_OUTBOX"])

    def start(self, service: str, name: str | None = None, **env: object) -> ServiceProcess:
        """Start `python -m wasched.<service>`; `name` tells two instances apart."""
        name = name or service
        proc = self.procs.get(name)
        if proc is None:
            merged = {**self.env, **{k: str(v) for k, v in env.items()}}
            proc = ServiceProcess(service, merged, self.root / f"{name}.log")
            self.procs[name] = proc
        return proc.start()

    def kill(self, name: str, kind: str = "sigkill") -> Disruption:
        self.assert_alive(name)
        event = self.timeline.begin(name, kind)
        self.procs[name].kill()
        return event

    def alive(self, name: str) -> bool:
        proc = self.procs[name].process
        return proc is not None and proc.poll() is None

    def assert_alive(self, name: str) -> None:
        if not self.alive(name):
            proc = self.procs[name]
            code = proc.process.returncode if proc.process else None
            raise AssertionError(f"{name} exited by itself ({code}):\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 4000) -> str:
        return self.procs[name].log()[-chars:]

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every live service; the exit codes (None: did not stop in time)."""
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            if proc.process is None or proc.process.poll() is not None:
                continue
            try:
                codes[name] = proc.stop(timeout=30)
            except AssertionError:
                codes[name] = None
        return codes

    def kill_all(self) -> None:
        """Last-resort cleanup: SIGKILL whatever is still running (our children only)."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, OSError):
                proc.kill()

    def tracebacks(self) -> dict[str, int]:
        found = {name: proc.log().count("Traceback") for name, proc in self.procs.items()}
        return {name: count for name, count in found.items() if count}

    def log_matches(self, name: str, pattern: str) -> list[str]:
        return re.findall(pattern, self.procs[name].log())


class Heartbeats:
    """Heartbeats seen on `wasched.heartbeat.*`, to know a restarted service is up."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[float, dict[str, Any]]]] = {}

    async def attach(self, nc: NATS) -> None:
        await nc.subscribe(f"{HEARTBEAT_PREFIX}*", cb=self._on_beat)

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = Heartbeat.model_validate_json(msg.data)
        except ValidationError:
            return
        self.seen.setdefault(beat.service, []).append((time.time(), beat.details))

    def since(self, service: str, after: float) -> list[dict[str, Any]]:
        return [details for at, details in self.seen.get(service, []) if at >= after]


async def wait_for_log(
    stack: Stack, name: str, pattern: str, timeout: float
) -> re.Match[str] | None:
    """Wait until `pattern` occurs in a line `name` logs from now on; its match (None on timeout).

    Reads only what was appended since the last look (a busy service's log grows large).
    """
    regex = re.compile(pattern)
    path = stack.procs[name].log_path
    offset = path.stat().st_size if path.exists() else 0
    partial = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            offset += len(chunk)
            lines = (partial + chunk.decode(errors="replace")).split("\n")
            partial = lines.pop()  # a line still being written
            for line in lines:
                if found := regex.search(line):
                    return found
        await asyncio.sleep(0.02)
    return None


Confirm = Callable[[re.Match[str]], Awaitable[bool]]
RANDOM = "random"


async def kill_repeatedly(
    stack: Stack,
    name: str,
    rng: random.Random,
    *,
    kills: int,
    gap: tuple[float, float],
    beats: Heartbeats | None = None,
    aims: Mapping[str, str | None] = MappingProxyType({RANDOM: None}),
    confirm: Mapping[str, Confirm] = MappingProxyType({}),
    wait_seconds: float = 10.0,
) -> int:
    """SIGKILL `name` and restart it, exactly `kills` times (a count, never a deadline).

    The kills are shared out evenly over the aims (label → regex), in an order drawn from
    `rng`: None is a random moment (the random gap is the fault injection itself); a regex kills the instant the service logs it once more (e.g. right after
    an S3 write, before the NATS ack). The aim's label is kept only when the aim was hit: the
    log line came within `wait_seconds` and, where `confirm` has a check for the label, the
    check (run on the dead process's state) says so; otherwise the kill counts as `random`.
    After each restart we wait for the new process's (active) heartbeat, so every kill hits a
    working process.
    """
    labels = (sorted(aims) * kills)[:kills]
    rng.shuffle(labels)
    for label in labels:
        await asyncio.sleep(rng.uniform(*gap))
        pattern = aims[label]
        hit = await wait_for_log(stack, name, pattern, wait_seconds) if pattern else None
        event = stack.kill(name, f"sigkill@{label}")
        if pattern is not None and (
            hit is None or (label in confirm and not await confirm[label](hit))
        ):
            event.kind = f"sigkill@{RANDOM}"
        restarted = time.time()
        stack.start(name)
        if beats is not None:
            await wait_up(stack, beats, name, after=restarted)
    return kills


def pending_ids(stored: list[Message], ids: set[str]) -> list[str]:
    """Ids not terminal yet (a repeated id counts by its first message, as the ledger does)."""
    status: dict[object, object] = {}
    for message in stored:
        status.setdefault(message.get("id"), message.get("status"))
    return sorted(i for i in ids if status.get(i) not in TERMINAL)


async def wait_settled(
    stack: Stack, ids: set[str], timeout: float, allow_pending: frozenset[str] = frozenset()
) -> tuple[list[Message], bool]:
    """Poll the stored document until every id is terminal; the last read and whether it did."""
    deadline = time.monotonic() + timeout
    stored: list[Message] = []
    must = ids - allow_pending
    while True:
        doc = await asyncio.to_thread(stack.doc.try_get)
        if doc is not None:
            stored = doc["messages"]
            if not pending_ids(stored, must):
                return stored, True
        if time.monotonic() > deadline:
            return stored, False
        await asyncio.sleep(0.5)


async def start_services(stack: Stack, beats: Heartbeats, *names: str) -> None:
    """Start each service and wait for its first heartbeat (the poller's as lease holder)."""
    began = time.time()
    for name in names:
        stack.start(name)
    for name in names:
        await wait_up(stack, beats, name, after=began)


async def wait_up(
    stack: Stack, beats: Heartbeats, name: str, after: float, timeout: float = 60.0
) -> None:
    """A heartbeat from the process started at `after`; fails at once, with its log, if it died."""
    service = stack.procs[name].service
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.assert_alive(name)
        if [b for b in beats.since(service, after) if service != "poller" or b.get("active")]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} started but sent no heartbeat within {timeout}s")
