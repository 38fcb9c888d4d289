"""The local stack's decisions, without starting anything: ports, environment, output."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from dotenv import dotenv_values

from wasched.cli import stack
from wasched.cli.natsconf import ensure_seeds, seed_path
from wasched.cli.stack import StackConfig, StackError
from wasched.common.settings import load_settings


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own .env must not change what these tests see."""
    monkeypatch.chdir(tmp_path)


def _args(*argv: str) -> argparse.Namespace:
    return stack.build_parser().parse_args(list(argv))


def test_defaults_are_the_documented_ports_and_data_dir(tmp_path: Path) -> None:
    config = stack.resolve(_args(), {})
    assert (config.nats_port, config.nats_monitor_port, config.s3_port, config.health_port) == (
        4222,
        8222,
        8333,
        3002,
    )
    assert config.data_dir == tmp_path / ".data"
    assert not config.dryrun


def test_flags_win_over_environment() -> None:
    env = {
        "NATS_PORT": "5222",
        "S3_PORT": "9333",
        "HEALTH_PORT": "4002",
        "WASCHED_DATA_DIR": "/tmp/x",
        "WHATSAPP_TRANSPORT": "dryrun",
    }
    config = stack.resolve(_args("--nats-port", "6222", "--data-dir", "/tmp/y"), env)
    assert config.nats_port == 6222
    assert config.s3_port == 9333
    assert config.health_port == 4002
    assert config.data_dir == Path("/tmp/y")
    assert config.dryrun


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"NATS_PORT": "http"}, "NATS_PORT='http': expected a port number"),
        ({"S3_PORT": "70000"}, "S3_PORT=70000: expected a port number from 1 to 65535"),
    ],
)
def test_bad_port_values_name_the_variable(env: dict[str, str], says: str) -> None:
    with pytest.raises(StackError, match=says):
        stack.resolve(_args(), env)


def test_taken_ports_are_named_with_the_way_out() -> None:
    config = stack.resolve(_args(), {})
    assert stack.taken_ports(config, in_use=lambda port: False) is None
    line = stack.taken_ports(config, in_use=lambda port: port in {4222, 3002})
    assert line == (
        "port already in use: 4222 (NATS: choose another with --nats-port or NATS_PORT); "
        "3002 (health: choose another with --health-port or HEALTH_PORT)"
    )
    same = stack.resolve(_args("--s3-port", "4222"), {})
    assert "same port is given for two servers: 4222" in str(stack.taken_ports(same))


def _config(tmp_path: Path, dryrun: bool = True) -> StackConfig:
    return StackConfig(tmp_path / "data", 14222, 18222, 18333, 13002, dryrun=dryrun)


def test_services_are_pointed_at_the_embedded_servers_and_data_dir(tmp_path: Path) -> None:
    env = stack.child_env(_config(tmp_path))
    assert env["NATS_URL"] == "nats://127.0.0.1:14222"
    assert env["S3_ENDPOINT"] == "http://127.0.0.1:18333"
    assert env["HEALTH_PORT"] == "13002"
    assert env["HEALTH_HOST"] == "127.0.0.1"
    assert env["WHATSAPP_TRANSPORT"] == "dryrun"
    assert env["DRYRUN_MODE"] == "record"  # its schedule is its own: not a rehearsal
    assert not stack.check_settings(_config(tmp_path)).rehearsal
    assert env["DRYRUN_OUTBOX"] == str(tmp_path / "data" / "outbox.jsonl")
    assert env["WHATSAPP_SESSION"] == str(tmp_path / "data" / "session.sqlite3")
    assert "WHATSAPP_TRANSPORT" not in stack.child_env(_config(tmp_path, dryrun=False))


def test_local_env_file_lets_the_cli_reach_the_stack(tmp_path: Path) -> None:
    config = _config(tmp_path)
    settings = stack.check_settings(config)
    path = tmp_path / "local.env"
    path.write_text(stack.local_env_text(config, settings))
    assert dotenv_values(path)["NATS_URL"] == "nats://127.0.0.1:14222"
    keys = ensure_seeds(config.secrets_dir)  # the stack makes them before it writes the file
    from_file = load_settings(_env_file=path)
    assert from_file.nats_nkey_seed_file == seed_path(config.secrets_dir, "admin")
    assert set(keys) == {"poller", "sender", "health", "client", "admin"}
    assert from_file.s3_endpoint == "http://127.0.0.1:18333"
    assert from_file.s3_secret_access_key is not None
    assert from_file.s3_secret_access_key.get_secret_value() == stack.SECRET_KEY
    assert from_file.health_port == 13002


def test_banner_names_page_endpoint_bucket_and_credentials(tmp_path: Path) -> None:
    config = _config(tmp_path)
    text = stack.banner(config, stack.check_settings(config))
    for expected in (
        "http://127.0.0.1:13002/",
        "http://127.0.0.1:18333",
        "S3 bucket     wasched",
        f"S3 access key {stack.ACCESS_KEY}",
        f"S3 secret key {stack.SECRET_KEY}",
        "dryrun",
        str(config.local_env_file),
    ):
        assert expected in text


def test_bad_service_settings_stop_the_stack_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(StackError, match="LOG_LEVEL='chatty'"):
        stack.check_settings(_config(tmp_path))


def test_output_is_prefixed_and_coloured_only_for_terminals() -> None:
    assert stack.prefixed("poller", "hello", colour=False) == "poller | hello"
    assert stack.prefixed("sender", "hi", colour=True) == "\033[35msender |\033[0m hi"
    stream = io.StringIO()
    assert not stack.use_colour(stream, {})
    assert stack.use_colour(stream, {"FORCE_COLOR": "1"})
    assert not stack.use_colour(stream, {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    out = stack.Output(stream, colour=False)
    out.block("stack", "a\nb")
    assert stream.getvalue() == "stack  | a\nstack  | b\n"


def test_one_stack_per_data_dir(tmp_path: Path) -> None:
    first = stack.acquire_lock(tmp_path)
    try:
        with pytest.raises(StackError, match=r"another local stack \(pid \d+\) uses"):
            stack.acquire_lock(tmp_path)
    finally:
        first.close()
    stack.acquire_lock(tmp_path).close()


def test_the_banner_says_which_media_the_sender_can_send() -> None:
    def found(*tools: str):
        return lambda name: f"/usr/bin/{name}" if name in tools else None

    assert stack.media_line("neonize", found("ffmpeg", "ffprobe")).startswith("every type")
    assert stack.media_line("neonize", found()) == (
        "images and documents only: video, audio and voice notes need ffmpeg and ffprobe "
        "on PATH (e.g. apt install ffmpeg, brew install ffmpeg)"
    )
    assert "need ffprobe on PATH" in stack.media_line("neonize", found("ffmpeg"))
    assert stack.media_line("dryrun", found()).startswith("every type (dryrun")
