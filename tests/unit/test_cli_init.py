"""`wasched init`: a ready `.env`, secrets as files, and the NATS server config that trusts them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from wasched.cli.main import run
from wasched.cli.natsconf import public_key, seed_path
from wasched.common.permissions import ROLES
from wasched.common.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
OLD_ENV = """\
B2_S3_ENDPOINT=https://s3.eu-central-003.backblazeb2.com
B2_ACCESS_KEY_ID=0031234567890abcdef
B2_SECRET_ACCESS_KEY=K003-very-secret-key
B2_BUCKET=family-bucket
B2_PREFIX=whatsapp/
B2_REGION=eu-central-003
HEALTH_TOKEN=old-page-token
NATS_URL=nats://old-host:4222
POLL_INTERVAL_SECONDS=30
OLD_ONLY_SETTING=kept as it was
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / ".env.example").write_text((ROOT / ".env.example").read_text())
    return tmp_path


def wasched_init(root: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run(["init", "--dir", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_init_writes_env_secrets_and_a_config_trusting_each_role(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = wasched_init(checkout, capsys=capsys)
    assert code == 0, out
    secrets = checkout / "secrets"
    assert _mode(secrets) == 0o700 and _mode(checkout / ".env") == 0o600
    conf = (secrets / "nats-server.conf").read_text()
    keys = {role: public_key(seed_path(secrets, role).read_bytes()) for role in ROLES}
    assert len(set(keys.values())) == len(ROLES), "one user per role"
    for key in keys.values():
        assert f'nkey: "{key}"' in conf
    assert '"SU' not in conf, "the server holds public keys only"
    token = (secrets / "health_token").read_text().strip()
    assert len(token) >= 40
    env = dotenv_values(checkout / ".env")
    assert not {k for k, v in env.items() if v and ("SECRET" in k or "TOKEN" in k)}
    assert token not in (checkout / ".env").read_text()
    assert "s3_secret_access_key holds a random key" in out
    # the services read their secrets from these files (the compose environment names them)
    settings = load_settings(
        _env_file=checkout / ".env",
        health_token_file=secrets / "health_token",
        nats_nkey_seed_file=seed_path(secrets, "health"),
    )
    assert settings.health_token is not None
    assert settings.health_token.get_secret_value() == token


def test_an_old_env_is_carried_over_and_its_secrets_move_to_files(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = checkout / "old.env"
    old.write_text(OLD_ENV)
    code, out = wasched_init(checkout, "--from", str(old), capsys=capsys)
    assert code == 0, out
    env = dotenv_values(checkout / ".env")
    assert env["S3_ENDPOINT"] == "https://s3.eu-central-003.backblazeb2.com"
    assert env["S3_ACCESS_KEY_ID"] == "0031234567890abcdef"
    assert env["S3_BUCKET"] == "family-bucket"
    assert env["S3_REGION"] == "eu-central-003"  # B2_REGION, the alias
    assert env["POLL_INTERVAL_SECONDS"] == "30"
    assert env["OLD_ONLY_SETTING"] == "kept as it was"
    assert env["NATS_URL"] == "nats://127.0.0.1:4222", "compose sets each container's own"
    text = (checkout / ".env").read_text()
    assert "K003-very-secret-key" not in text and "old-page-token" not in text
    secrets = checkout / "secrets"
    assert (secrets / "s3_secret_access_key").read_text() == "K003-very-secret-key\n"
    assert (secrets / "health_token").read_text() == "old-page-token\n"
    assert "random key" not in out


def test_an_existing_env_is_never_overwritten_by_accident(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (checkout / ".env").write_text("S3_BUCKET=mine\n")
    code, out = wasched_init(checkout, capsys=capsys)
    assert code == 1
    assert out.strip().splitlines() == [
        f"wasched: {checkout / '.env'} exists: `--from {checkout / '.env'}` carries it over "
        "into a new one (its secrets move to files), `--rotate` renews credentials only"
    ]
    assert (checkout / ".env").read_text() == "S3_BUCKET=mine\n"
    assert not (checkout / "secrets").exists()
    code, out = wasched_init(checkout, "--from", str(checkout / ".env"), capsys=capsys)
    assert code == 0, out
    assert dotenv_values(checkout / ".env")["S3_BUCKET"] == "mine"
    assert (checkout / ".env.before-init").read_text() == "S3_BUCKET=mine\n"


def test_rotate_renews_nats_keys_and_the_page_token_and_keeps_the_rest(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wasched_init(checkout, capsys=capsys)[0] == 0
    secrets = checkout / "secrets"
    before = {p.name: p.read_bytes() for p in secrets.iterdir()}
    env_before = (checkout / ".env").read_bytes()
    code, out = wasched_init(checkout, "--rotate", capsys=capsys)
    assert code == 0, out
    after = {p.name: p.read_bytes() for p in secrets.iterdir()}
    renewed = {name for name in before if before[name] != after[name]}
    assert renewed == {*(f"nats-{role}.nk" for role in ROLES), "nats-server.conf", "health_token"}
    assert (checkout / ".env").read_bytes() == env_before
    conf = after["nats-server.conf"].decode()
    assert public_key(after["nats-admin.nk"]) in conf
    assert public_key(before["nats-admin.nk"]) not in conf, "the old keys are no longer trusted"


def test_tls_options_go_into_the_server_config(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = wasched_init(
        checkout, "--tls-cert", "/etc/nats/tls/server.pem", "--tls-key", "/etc/nats/tls/key.pem",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    conf = (checkout / "secrets" / "nats-server.conf").read_text()
    assert 'cert_file: "/etc/nats/tls/server.pem"' in conf
    assert wasched_init(checkout, "--rotate", "--tls-cert", "x", capsys=capsys) == (
        2,
        "wasched: --tls-cert and --tls-key go together\n",
    )
