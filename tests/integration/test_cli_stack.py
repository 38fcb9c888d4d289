"""The local stack's embedded servers: a taken port, and a second start that reuses the data."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import boto3
import nats

from tests.support.waiting import eventually
from wasched.cli import stack
from wasched.cli.natsconf import seed_path
from wasched.cli.servers import free_port
from wasched.common import topology


def test_a_taken_port_is_named_in_one_line_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "wasched.cli.stack", "--data-dir", str(tmp_path / "data"),
                "--nats-port", str(free_port()), "--nats-monitor-port", str(free_port()),
                "--s3-port", str(port), "--health-port", str(free_port())]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                env={**os.environ, "WHATSAPP_TRANSPORT": "dryrun"})  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"wasched-stack: port already in use: {port} (S3: choose another with --s3-port or S3_PORT)"
    ]
    assert not (tmp_path / "data" / "nats").exists(), "no server was started"


async def _publish_and_count(url: str, seed: Path, publish: bool) -> int:
    nc = await nats.connect(url, nkeys_seed=str(seed))  # NATS requires a user, as in production
    try:
        js = nc.jetstream()
        await topology.declare(js)
        if publish:
            await js.publish(
                topology.CANCEL, b'{"id": "kept"}', headers={"Nats-Msg-Id": "cancel:kept"}
            )
        return (await js.stream_info(topology.IN_STREAM)).state.messages
    finally:
        await nc.close()


async def test_a_second_start_reuses_nats_and_s3_data(tmp_path: Path) -> None:
    config = stack.StackConfig(
        tmp_path / "data", free_port(), free_port(), free_port(), free_port()
    )
    out = stack.Output(io.StringIO(), colour=False)
    key = "whatsapp/scheduled.json"
    seeds = []
    mine = b'{"messages": [{"id": "x"}]}'
    for attempt in (1, 2):
        nats_proc, s3 = stack.start_servers(config, out, key)
        try:
            client = boto3.client(
                "s3", endpoint_url=config.s3_endpoint, region_name="us-east-1",
                aws_access_key_id=stack.ACCESS_KEY, aws_secret_access_key=stack.SECRET_KEY,
            )  # fmt: skip
            body = client.get_object(Bucket=stack.BUCKET, Key=key)["Body"].read()
            if attempt == 1:  # a first start creates the schedule the poller needs
                assert body == b'{\n  "messages": []\n}\n'
                client.put_object(Bucket=stack.BUCKET, Key=key, Body=mine)
            else:  # and never writes over one that exists
                assert body == mine
            admin = seed_path(config.secrets_dir, "admin")
            seeds.append(admin.read_bytes())
            assert await _publish_and_count(config.nats_url, admin, publish=attempt == 1) == 1
        finally:
            stack.stop_servers([nats_proc, s3])
        assert not nats_proc.running and not s3.running
    assert "nats ready" in out.stream.getvalue()
    assert seeds[0] == seeds[1], "the NATS users are kept across starts"
    assert out.stream.getvalue().count("created an empty schedule") == 1


def _scripts(tmp_path: Path, **special: str) -> Callable[[str], list[str]]:
    """Stand-ins for the services: each prints a line and sleeps, unless given a script."""

    def argv(name: str) -> list[str]:
        default = f"import time; print('{name} up', flush=True); time.sleep(600)"
        return [sys.executable, "-c", special.get(name, default)]

    return argv


def _supervisor(tmp_path: Path, argv: Callable[[str], list[str]]) -> stack.Supervisor:
    config = stack.StackConfig(tmp_path, free_port(), free_port(), free_port(), free_port())
    return stack.Supervisor(config, {}, stack.Output(io.StringIO(), colour=False), [], argv)


async def test_a_service_refusing_its_configuration_stops_the_stack(tmp_path: Path) -> None:
    refuse = "print('invalid configuration: LOG_LEVEL', flush=True); raise SystemExit(2)"
    supervisor = _supervisor(tmp_path, _scripts(tmp_path, poller=refuse))
    assert await asyncio.wait_for(supervisor.run(), 30) == 1
    output = supervisor.out.stream.getvalue()
    assert "poller | invalid configuration: LOG_LEVEL" in output
    assert "poller refused its configuration (exit 2); see its line above" in output
    assert "restarting" not in output
    assert all(proc.returncode is not None for proc in supervisor.procs.values())


async def test_a_crashed_service_is_restarted_and_sigterm_stops_all(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    flaky = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "if not p.exists():\n"
        "    p.touch(); print('sender crashing', flush=True); sys.exit(1)\n"
        "print('sender second start', flush=True); time.sleep(600)\n"
    )
    supervisor = _supervisor(tmp_path, _scripts(tmp_path, sender=flaky))
    running = asyncio.create_task(supervisor.run())

    def seen(text: str) -> bool:
        return text in supervisor.out.stream.getvalue()

    await eventually(lambda: seen("sender | sender second start"), 30, what="the restart")
    assert seen("sender exited with code 1; restarting in 2s")
    await eventually(lambda: seen("poller | poller up") and seen("health | health up"), 30)
    supervisor.on_signal(signal.SIGTERM)
    assert await asyncio.wait_for(running, 30) == 0
    assert seen("SIGTERM: stopping the services")
    codes = {name: proc.returncode for name, proc in supervisor.procs.items()}
    assert codes == {
        "poller": -signal.SIGTERM,
        "sender": -signal.SIGTERM,
        "health": -signal.SIGTERM,
    }
