"""The local stack the way docs/running.md runs it: `make run` (dryrun), then the CLI.

A message added 5 s ahead with `wasched schedule add` must reach the dryrun
outbox at its time and end `sent` in the stored document; a picture sent with
`wasched send --media` goes through the bucket to the outbox; Ctrl-C (SIGINT to the
terminal's process group) must stop everything and leave no process behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3

from tests.support.mediafiles import jpeg
from tests.support.waiting import eventually_sync
from wasched.cli import stack
from wasched.cli.servers import die_with_parent, free_port
from wasched.common.clock import format_utc, parse_utc, utcnow

ROOT = Path(__file__).resolve().parents[2]
WASCHED = str(Path(sys.executable).parent / "wasched")


def processes_with(marker: str) -> dict[int, str]:
    """Live processes whose environment holds `marker` (everything the stack started)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
    return {pid: cmd.decode(errors="replace") for pid, cmd in found.items()}


def wasched(*argv: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WASCHED, "--env-file", str(env_file), *argv],
        capture_output=True, text=True, timeout=60, cwd=env_file.parent,
    )  # fmt: skip


def stored_message(s3_port: int, message_id: str) -> dict[str, Any] | None:
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
        aws_access_key_id=stack.ACCESS_KEY, aws_secret_access_key=stack.SECRET_KEY,
    )  # fmt: skip
    body = client.get_object(Bucket=stack.BUCKET, Key="whatsapp/scheduled.json")["Body"].read()
    return next((m for m in json.loads(body)["messages"] if m.get("id") == message_id), None)


def outbox_line(outbox: Path, message_id: str) -> dict[str, Any] | None:
    if not outbox.exists():
        return None
    for line in outbox.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("id") == message_id:
            return entry
    return None


def test_make_run_schedules_sends_records_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    marker = f"WASCHED_DATA_DIR={data}"
    s3_port = free_port()
    outer_make = {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}  # a user's terminal, not a sub-make of ours
    env = {
        **{k: v for k, v in os.environ.items() if k not in outer_make},
        "WASCHED_DATA_DIR": str(data),
        "NATS_PORT": str(free_port()),
        "NATS_MONITOR_PORT": str(free_port()),
        "S3_PORT": str(s3_port),
        "HEALTH_PORT": str(free_port()),
        "WHATSAPP_TRANSPORT": "dryrun",
        "POLL_INTERVAL_SECONDS": "2",
        "SEND_MIN_GAP_SECONDS": "0",
        "SEND_JITTER_SECONDS": "0",
    }
    log_path = tmp_path / "stack.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # its own "terminal" group
            preexec_fn=die_with_parent,  # and gone with a killed pytest
        )  # fmt: skip
    try:
        eventually_sync(
            lambda: "ready: status page" in log_path.read_text() or make.poll() is not None,
            timeout=60, what="the stack to report ready",
        )  # fmt: skip
        assert "ready: status page" in log_path.read_text(), log_path.read_text()[-3000:]
        env_file = data / "local.env"
        started = processes_with(marker)
        assert len(started) >= 6, started  # make, uv, the stack, 3 services, nats, weed

        at = utcnow() + timedelta(seconds=5)
        text = f"e2e {uuid.uuid4().hex[:8]} 🎂"
        added = wasched(
            "schedule", "add", "--to", "+44 7957 189696", "--at", format_utc(at), "--message", text,
            env_file=env_file,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        message_id = added.stdout.split()[1]

        sent = eventually_sync(
            lambda: outbox_line(data / "outbox.jsonl", message_id), timeout=30,
            what="the message in the dryrun outbox",
        )  # fmt: skip
        assert sent["jid"] == "447957189696@s.whatsapp.net"
        assert sent["message"] == text
        lateness = (parse_utc(sent["at"]) - at).total_seconds()
        assert -0.3 <= lateness < 5, f"sent {lateness:.3f}s after its time"

        stored = eventually_sync(
            lambda: (m := stored_message(s3_port, message_id)) and m["status"] == "sent" and m,
            timeout=30, what="status sent in the stored document",
        )  # fmt: skip
        assert stored["sentAt"]
        # docs/running.md: a picture from this machine, uploaded to the bucket by the CLI,
        # fetched from there and checked by the sender, recorded with its hash by dryrun
        card = data / "card.jpg"
        card.write_bytes(jpeg(48))
        picture = wasched(
            "send", "--to", "447957189696", "--media", "./card.jpg", "--message", "Merry Christmas",
            "--id", "e2e-card", env_file=env_file,
        )  # fmt: skip
        assert (picture.returncode, picture.stdout) == (0, "sent e2e-card\n"), picture.stderr
        line = outbox_line(data / "outbox.jsonl", "e2e-card")
        assert line is not None and line["message"] == "Merry Christmas"
        assert line["media"]["sha256"] == hashlib.sha256(card.read_bytes()).hexdigest()
        assert (line["media"]["type"], line["media"]["mime"]) == ("image", "image/jpeg")

        listed = wasched("schedule", "list", "--status", "sent", env_file=env_file)
        assert message_id in listed.stdout, listed.stdout + listed.stderr
        health = wasched("status", env_file=env_file)
        assert health.stdout.startswith("wasched is healthy"), health.stdout + health.stderr
        assert health.returncode == 0

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        make.wait(timeout=60)
        eventually_sync(lambda: not processes_with(marker), timeout=15, what="no process left")
        output = log_path.read_text()
        assert "SIGINT: stopping the services" in output
        assert output.rstrip().endswith("stopped"), output[-2000:]
        for name in ("poller |", "sender |", "health |"):
            assert name in output
    finally:
        for pid in processes_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
