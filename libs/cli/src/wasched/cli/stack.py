"""The whole system on one machine, no Docker: `python -m wasched.cli.stack` (`make run`).

Starts an embedded nats-server (JetStream under `<data>/nats`) and SeaweedFS
`weed mini` (S3 under `<data>/s3`, bucket created), then the poller, sender and
health service as child processes whose output is shown with coloured prefixes.
NATS requires authentication as in production: one nkey per role, generated
once under `<data>/secrets`, each service given only its own. A second start
reuses the data and the keys. SIGINT/SIGTERM (Ctrl-C) stops the services first,
then the servers, and leaves no process behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, NoReturn

import nats
from dotenv import dotenv_values

from wasched.cli.natsconf import ServerOptions, seed_path, write_config
from wasched.cli.servers import (
    NatsServer,
    S3Server,
    Server,
    ServerError,
    die_with_parent,
    ensure_bucket,
    ensure_document,
    nats_server,
    port_in_use,
    seaweed_server,
)
from wasched.common.settings import Settings, SettingsError, load_settings
from wasched.common.topology import IN_STREAM
from wasched.common.waits import wait_event

SERVICES = ("poller", "sender", "health")
BUCKET = "wasched"
ACCESS_KEY = "wasched"
SECRET_KEY = "wasched-secret"  # local only: SeaweedFS listens on 127.0.0.1
STOP_GRACE_SECONDS = 20.0
FAST_EXIT_SECONDS = 10.0
MAX_FAST_EXITS = 5
REPEAT_SIGNAL_SECONDS = 1.0
BAD_CONFIGURATION = 2
"""Every service exits 2 on settings it refuses: restarting cannot help."""

_COLOURS = {"stack": "1;33", "poller": "36", "sender": "35", "health": "32"}


class StackError(RuntimeError):
    """The stack cannot start; one line says why."""


@dataclass(frozen=True, slots=True)
class Port:
    what: str
    number: int
    flag: str
    env: str


@dataclass(frozen=True, slots=True)
class StackConfig:
    data_dir: Path
    nats_port: int
    nats_monitor_port: int
    s3_port: int
    health_port: int
    dryrun: bool = False

    def ports(self) -> list[Port]:
        return [
            Port("NATS", self.nats_port, "--nats-port", "NATS_PORT"),
            Port(
                "NATS monitoring",
                self.nats_monitor_port,
                "--nats-monitor-port",
                "NATS_MONITOR_PORT",
            ),
            Port("S3", self.s3_port, "--s3-port", "S3_PORT"),
            Port("health", self.health_port, "--health-port", "HEALTH_PORT"),
        ]

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def local_env_file(self) -> Path:
        return self.data_dir / "local.env"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def nats_config(self) -> Path:
        return self.secrets_dir / "nats-server.conf"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wasched-stack", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="where data lives (WASCHED_DATA_DIR, default .data)")
    for name, default in (
        ("nats-port", 4222),
        ("nats-monitor-port", 8222),
        ("s3-port", 8333),
        ("health-port", 3002),
    ):
        env = name.replace("-", "_").upper()
        parser.add_argument(f"--{name}", type=int, help=f"({env}, default {default})")
    parser.add_argument(
        "--dryrun",
        action="store_true",
        help="send nothing: WHATSAPP_TRANSPORT=dryrun, outbox in the data dir",
    )
    return parser


def _port(value: int | str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise StackError(f"{name}={value!r}: expected a port number") from None
    if not 1 <= number <= 65535:
        raise StackError(f"{name}={number}: expected a port number from 1 to 65535")
    return number


def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> StackConfig:
    """Flags win over the environment, which wins over the defaults."""

    def pick(flag: int | None, name: str, default: int) -> int:
        return _port(flag if flag is not None else env.get(name), default, name)

    data = args.data_dir or env.get("WASCHED_DATA_DIR") or ".data"
    return StackConfig(
        data_dir=Path(data).expanduser().resolve(),
        nats_port=pick(args.nats_port, "NATS_PORT", 4222),
        nats_monitor_port=pick(args.nats_monitor_port, "NATS_MONITOR_PORT", 8222),
        s3_port=pick(args.s3_port, "S3_PORT", 8333),
        health_port=pick(args.health_port, "HEALTH_PORT", 3002),
        dryrun=args.dryrun or env.get("WHATSAPP_TRANSPORT", "").lower() == "dryrun",
    )


def taken_ports(config: StackConfig, in_use: Callable[[int], bool] = port_in_use) -> str | None:
    """One line naming every port already in use (and how to choose another), or None."""
    ports = config.ports()
    numbers = [p.number for p in ports]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        return f"the same port is given for two servers: {', '.join(map(str, twice))}"
    busy = [p for p in ports if in_use(p.number)]
    if not busy:
        return None
    names = "; ".join(
        f"{p.number} ({p.what}: choose another with {p.flag} or {p.env})" for p in busy
    )
    return f"port already in use: {names}"


def child_env(config: StackConfig) -> dict[str, str]:
    """What the services are told; everything else comes from the environment and `.env`."""
    env = {
        "NATS_URL": config.nats_url,
        "S3_ENDPOINT": config.s3_endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_BUCKET": BUCKET,
        "HEALTH_PORT": str(config.health_port),
        "HEALTH_HOST": "127.0.0.1",
        "WHATSAPP_SESSION": str(config.data_dir / "session.sqlite3"),
        "DRYRUN_OUTBOX": str(config.data_dir / "outbox.jsonl"),
        "PYTHONUNBUFFERED": "1",
    }
    if config.dryrun:  # the stack's schedule is its own: record outcomes like the real run
        env["WHATSAPP_TRANSPORT"] = "dryrun"
        env["DRYRUN_MODE"] = "record"
    return env


def role_env(config: StackConfig, role: str) -> dict[str, str]:
    """A service's (or the CLI's) own NATS user, and only that: other ways of naming one
    (from the environment or `.env`) are cleared."""
    return {
        "NATS_NKEY_SEED_FILE": str(seed_path(config.secrets_dir, role)),
        "NATS_CREDS_FILE": "",
        "NATS_USER": "",
        "NATS_PASSWORD": "",
        "NATS_PASSWORD_FILE": "",
    }


def check_settings(config: StackConfig) -> Settings:
    """Validate the services' configuration before anything starts (one line when bad)."""
    overrides = {k.lower(): v for k, v in child_env(config).items() if k != "PYTHONUNBUFFERED"}
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise StackError(str(exc)) from None


def local_env_text(config: StackConfig, settings: Settings) -> str:
    """A dotenv for the CLI in another terminal: `wasched --env-file <data>/local.env ...`."""
    keys = (
        "NATS_URL",
        "S3_ENDPOINT",
        "S3_REGION",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "S3_BUCKET",
        "HEALTH_PORT",
    )
    env = {**child_env(config), **role_env(config, "admin")}
    lines = [f"{key}={env[key]}" for key in (*keys, "NATS_NKEY_SEED_FILE")]
    lines.append(f"S3_PREFIX={settings.s3_prefix}")
    lines.append(f"MEDIA_KEY_PREFIX={settings.media_prefix}")
    lines.append(f"DISPLAY_TIMEZONE={settings.display_timezone}")
    return "# written by the local stack (wasched.cli.stack); used by `wasched --env-file`\n" + (
        "\n".join(lines) + "\n"
    )


def media_line(transport: str, which: Callable[[str], str | None] = shutil.which) -> str:
    """What the sender will be able to send: neonize needs ffmpeg/ffprobe for video, audio
    and voice notes, and `make run` cannot install them (the sender image has them)."""
    if transport == "dryrun":
        return "every type (dryrun fetches and checks the file, sends nothing)"
    missing = [tool for tool in ("ffmpeg", "ffprobe") if which(tool) is None]
    if not missing:
        return "every type (ffmpeg and ffprobe found)"
    return (
        f"images and documents only: video, audio and voice notes need {' and '.join(missing)} "
        "on PATH (e.g. apt install ffmpeg, brew install ffmpeg)"
    )


def banner(config: StackConfig, settings: Settings) -> str:
    env_file = config.local_env_file
    transport = settings.whatsapp_transport.value
    lines = [
        f"status page   http://127.0.0.1:{config.health_port}/",
        f"NATS          {config.nats_url}  (monitoring http://127.0.0.1:{config.nats_monitor_port})",
        f"NATS users    one nkey per role in {config.secrets_dir} (config {config.nats_config.name})",
        f"S3 endpoint   {config.s3_endpoint}",
        f"S3 bucket     {BUCKET}  (schedule: s3://{BUCKET}/{settings.document_key})",
        f"S3 access key {ACCESS_KEY}",
        f"S3 secret key {SECRET_KEY}",
        f"WhatsApp      {transport}"
        + (
            f"  (outbox {config.data_dir / 'outbox.jsonl'}; outcomes recorded: the schedule is "
            "this stack's own)"
            if transport == "dryrun"
            else "  (link it: scan the QR on the status page, or `wasched pair`)"
        ),
        f"media         {media_line(transport)}",
        f"data          {config.data_dir}",
        f"CLI           wasched --env-file {env_file} schedule list",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def use_colour(stream: IO[str], env: Mapping[str, str]) -> bool:
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def prefixed(name: str, text: str, colour: bool, width: int = 6) -> str:
    label = f"{name:<{width}} |"
    if colour:
        label = f"\033[{_COLOURS.get(name, '0')}m{label}\033[0m"
    return f"{label} {text}"


class Output:
    """All lines go through here, so children's lines never interleave mid-line."""

    def __init__(self, stream: IO[str], colour: bool) -> None:
        self.stream, self.colour = stream, colour

    def line(self, name: str, text: str) -> None:
        self.stream.write(prefixed(name, text, self.colour) + "\n")
        self.stream.flush()

    def block(self, name: str, text: str) -> None:
        for row in text.splitlines():
            self.line(name, row)


def acquire_lock(data_dir: Path) -> IO[str]:
    """One stack per data directory (two nats-servers on one JetStream dir would corrupt it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "stack.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise StackError(
            f"another local stack (pid {holder}) uses {data_dir}; stop it first or pass --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def start_servers(
    config: StackConfig, out: Output, document_key: str | None = None
) -> tuple[NatsServer, S3Server]:
    """NATS and S3, the bucket, and (given its key) the schedule of a first start."""
    (config.data_dir / "nats").mkdir(parents=True, exist_ok=True)
    write_config(config.nats_config, config.secrets_dir, ServerOptions())  # keys kept across runs
    auth = ["-c", str(config.nats_config)]
    nats = nats_server(config.data_dir / "nats", config.nats_port, config.nats_monitor_port, auth)
    s3 = seaweed_server(config.data_dir / "s3", BUCKET, config.s3_port, ACCESS_KEY, SECRET_KEY)
    started: list[Server] = []
    try:
        for server in (nats, s3):
            server.die_with_parent = True
            server.start(timeout=60)
            started.append(server)
            out.line("stack", f"{server.name} ready (log {server.log_path})")
        ensure_bucket(s3, BUCKET)
        if document_key is not None and ensure_document(s3, BUCKET, document_key):
            out.line("stack", f"created an empty schedule at s3://{BUCKET}/{document_key}")
    except BaseException:
        stop_servers(started)
        raise
    return nats, s3


def stop_servers(servers: Sequence[Server]) -> None:
    for server in reversed(servers):
        server.stop(timeout=15)


def service_argv(name: str) -> list[str]:
    return [sys.executable, "-m", f"wasched.{name}"]


class Supervisor:
    """Runs the services, restarts one that exits, and stops them all on a signal."""

    def __init__(
        self,
        config: StackConfig,
        env: dict[str, str],
        out: Output,
        servers: Sequence[Server],
        argv: Callable[[str], list[str]] | None = None,
        own_env: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        self.config, self.env, self.out, self.servers = config, env, out, servers
        self.argv = argv or service_argv
        self.own_env = own_env or (lambda _name: {})
        """What only this service gets (its NATS user)."""
        self.stopping = asyncio.Event()
        self.failure: str | None = None
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._last_signal = 0.0
        self._forced = False

    def on_signal(self, signum: int) -> None:
        now = time.monotonic()
        if not self.stopping.is_set():
            self._last_signal = now
            self.out.line("stack", f"{signal.Signals(signum).name}: stopping the services")
            self.stopping.set()
        elif now - self._last_signal > REPEAT_SIGNAL_SECONDS and not self._forced:
            self._forced = True  # a second, deliberate Ctrl-C: do not wait any longer
            self.out.line("stack", "stopping now (SIGKILL)")
            self._signal_all(signal.SIGKILL)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal, signum)
        tasks = [asyncio.create_task(self._keep(name)) for name in SERVICES]
        tasks.append(asyncio.create_task(self._watch_servers()))
        tasks.append(asyncio.create_task(self._announce_ready()))
        try:
            await self.stopping.wait()
            await self._stop_children()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if self.failure:
            self.out.line("stack", self.failure)
            return 1
        return 0

    async def _spawn(self, name: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv(name),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.env, **self.own_env(name)},
            start_new_session=True,
            preexec_fn=die_with_parent,
            limit=1 << 20,
        )

    async def _keep(self, name: str) -> None:
        fast_exits, delay = 0, 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            proc = await self._spawn(name)
            self.procs[name] = proc
            if self.stopping.is_set():  # stopped while it was starting
                self._signal_all(signal.SIGTERM)
            await self._pump(name, proc)
            code = await proc.wait()
            if self.stopping.is_set():
                return
            if code == BAD_CONFIGURATION:
                self._fail(f"{name} refused its configuration (exit {code}); see its line above")
                return
            quick = time.monotonic() - started < FAST_EXIT_SECONDS
            fast_exits = fast_exits + 1 if quick else 0
            delay = min(delay * 2, 30.0) if quick else 1.0
            if fast_exits >= MAX_FAST_EXITS:
                self._fail(f"{name} keeps exiting at start-up (code {code}); see its lines above")
                return
            self.out.line("stack", f"{name} exited with code {code}; restarting in {delay:g}s")
            await self._wait(delay)

    async def _pump(self, name: str, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # asyncio drops a line longer than the limit
                self.out.line(name, "(a line longer than 1 MiB was left out)")
                continue
            if not raw:
                return
            self.out.line(name, raw.decode(errors="replace").rstrip("\r\n"))

    async def _watch_servers(self) -> None:
        while not self.stopping.is_set():
            for server in self.servers:
                if not server.running:
                    code = server.process.returncode if server.process else "?"
                    self._fail(f"{server.name} exited (code {code}); see {server.log_path}")
                    return
            await self._wait(1.0)

    async def _announce_ready(self) -> None:
        """Once the page answers and the poller has declared the streams (requests work)."""
        url = f"http://127.0.0.1:{self.config.health_port}/ping"
        deadline = time.monotonic() + 120
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if await asyncio.to_thread(_answers, url) and await _declared(self.config):
                self.out.line(
                    "stack", f"ready: status page http://127.0.0.1:{self.config.health_port}/"
                )
                return
            await self._wait(0.5)

    async def _stop_children(self) -> None:
        self._signal_all(signal.SIGTERM)
        waits = [p.wait() for p in self.procs.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), STOP_GRACE_SECONDS)
        except TimeoutError:
            self.out.line("stack", f"services still running after {STOP_GRACE_SECONDS:g}s: SIGKILL")
            self._signal_all(signal.SIGKILL)
            await asyncio.gather(*[p.wait() for p in self.procs.values()])

    def _signal_all(self, signum: int) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signum)

    def _fail(self, text: str) -> None:
        self.failure = self.failure or text
        self.stopping.set()

    async def _wait(self, seconds: float) -> None:
        await wait_event(self.stopping, seconds)


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


async def _quiet(_: Exception) -> None:
    """The supervisor asks again; nats-py need not print each failed attempt."""


async def _declared(config: StackConfig) -> bool:
    seed = seed_path(config.secrets_dir, "admin")
    try:
        nc = await nats.connect(
            config.nats_url,
            nkeys_seed=str(seed),
            allow_reconnect=False,
            connect_timeout=2,
            error_cb=_quiet,
        )
    except Exception:
        return False
    try:
        await nc.jetstream(timeout=2).stream_info(IN_STREAM)
    except Exception:
        return False
    finally:
        await nc.close()
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def prepare(config: StackConfig) -> tuple[IO[str], Settings]:
    """Everything that can fail in one line, before any process starts."""
    settings = check_settings(config)
    lock = acquire_lock(config.data_dir)
    problem = taken_ports(config)
    if problem:
        lock.close()
        raise StackError(problem)
    return lock, settings


def write_local_env(config: StackConfig, settings: Settings) -> None:
    path = config.local_env_file
    path.write_text(local_env_text(config, settings))
    path.chmod(0o600)


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(sys.stdout, use_colour(sys.stdout, os.environ))
    try:
        config = resolve(args, {**_dotenv(Path(".env")), **os.environ})
        lock, settings = prepare(config)
    except StackError as exc:
        print(f"wasched-stack: {exc}", file=sys.stderr, flush=True)
        return 1
    with lock:
        try:
            servers = start_servers(config, out, settings.document_key)
        except ServerError as exc:
            print(f"wasched-stack: {exc}", file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            return 130
        try:
            write_local_env(config, settings)
            out.block("stack", banner(config, settings))
            supervisor = Supervisor(
                config, child_env(config), out, servers, own_env=partial(role_env, config)
            )
            code = asyncio.run(supervisor.run())
        except KeyboardInterrupt:
            code = 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish stopping the servers
            stop_servers(servers)
            out.line("stack", "stopped")
    return code


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
