"""`wasched init`: a ready `.env`, the NATS server config and random credentials for compose.

Secrets go to files under `secrets/` (the directory is private to its owner;
compose hands each service only its own, see compose.yaml), never into `.env`.
With `--from OLD_ENV` the settings of an older setup are carried over (the B2_*
names included) and its secrets moved into files. `--rotate` renews the NATS
keys and the status page token and leaves everything else alone.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from wasched.cli import natsconf
from wasched.cli.natsconf import ServerOptions, Tls
from wasched.common.permissions import ROLES

SECRETS_DIR = "secrets"
NATS_CONFIG = "nats-server.conf"
FILE_MODE = 0o644
"""Readable inside the containers (compose bind-mounts secret files with their host mode,
and the services run as uid 10001); the `secrets/` directory itself is 0700."""

SECRET_VARIABLES = {
    "S3_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "B2_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "HEALTH_TOKEN": "health_token",
    "GRAFANA_ADMIN_PASSWORD": "grafana_admin_password",
}
"""A variable of an old `.env` → the secret file its value moves to."""
RENAMED = {
    "B2_S3_ENDPOINT": "S3_ENDPOINT",
    "B2_REGION": "S3_REGION",
    "B2_ACCESS_KEY_ID": "S3_ACCESS_KEY_ID",
    "B2_BUCKET": "S3_BUCKET",
    "B2_PREFIX": "S3_PREFIX",
}
NOT_CARRIED = {"NATS_URL", "HEALTH_HOST", "WHATSAPP_SESSION", "DRYRUN_OUTBOX"}
"""compose.yaml sets these for each container; an old value would only mislead."""
MINIMAL_TEMPLATE = "S3_ENDPOINT=\nS3_REGION=us-east-1\nS3_BUCKET=wasched\nS3_PREFIX=whatsapp/\n"


class InitError(RuntimeError):
    """One line: what is in the way."""


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self, root: Path) -> str:
        def show(path: Path) -> str:
            return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

        lines = [f"wrote {show(p)}" for p in self.written]
        lines += [f"kept  {show(p)}" for p in self.kept]
        return "\n".join(lines + self.notes)


def read_env(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise InitError(f"--from {path}: no such file")
    values = {k: v for k, v in dotenv_values(path).items() if v}
    return {
        RENAMED.get(k, k): v
        for k, v in values.items()
        if not (k in RENAMED and RENAMED[k] in values)
    }


def render_env(template: str, old: dict[str, str], source: str | None) -> str:
    """The template with the old values filled in; secrets and compose's own left out."""
    carried = {k: v for k, v in old.items() if k not in SECRET_VARIABLES and k not in NOT_CARRIED}
    used: set[str] = set()
    lines = []
    for line in template.splitlines():
        match = re.match(r"^(?:# )?([A-Z][A-Z0-9_]*)=", line)
        name = match[1] if match else None
        if name in SECRET_VARIABLES and not line.startswith("#"):
            line = f"# {name}= (in {SECRETS_DIR}/{SECRET_VARIABLES[name]})"
        elif name in carried:
            line = f"{name}={_quote(carried[name])}"
            used.add(name)
        lines.append(line)
    extra = [k for k in carried if k not in used]
    if extra:
        lines += ["", f"# ---- kept from {source} ----"]
        lines += [f"{k}={_quote(carried[k])}" for k in extra]
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return (
        value
        if re.fullmatch(r"[\w@%+=:,./~-]*", value)
        else "'" + value.replace("'", "'\\''") + "'"
    )


def init(
    root: Path,
    *,
    source: Path | None = None,
    force: bool = False,
    rotate: bool = False,
    tls: Tls | None = None,
) -> Report:
    report = Report()
    env_path, secret_dir = root / ".env", root / SECRETS_DIR
    old = read_env(source) if source else {}
    if rotate:
        if not (secret_dir / NATS_CONFIG).exists():
            raise InitError(f"nothing to rotate: {secret_dir / NATS_CONFIG} does not exist")
    elif env_path.exists() and not force and source is None:
        raise InitError(
            f"{env_path} exists: `--from {env_path}` carries it over into a new one "
            "(its secrets move to files), `--rotate` renews credentials only"
        )
    secret_dir.mkdir(parents=True, exist_ok=True)
    secret_dir.chmod(0o700)
    if rotate:
        for role in ROLES:
            natsconf.seed_path(secret_dir, role).unlink(missing_ok=True)
        (secret_dir / "health_token").unlink(missing_ok=True)
    else:
        if env_path.exists():
            backup = env_path.with_name(".env.before-init")
            backup.write_bytes(env_path.read_bytes())
            backup.chmod(0o600)
            report.written.append(backup)
        template = root / ".env.example"
        text = template.read_text() if template.is_file() else MINIMAL_TEMPLATE
        env_path.write_text(render_env(text, old, str(source) if source else None))
        env_path.chmod(0o600)
        report.written.append(env_path)
    options = ServerOptions(
        listen="0.0.0.0:4222",
        http="127.0.0.1:8222",
        store_dir="/data",
        server_name="wasched",
        tls=tls,
    )
    had = {role: natsconf.seed_path(secret_dir, role).exists() for role in ROLES}
    natsconf.write_config(secret_dir / NATS_CONFIG, secret_dir, options, mode=FILE_MODE)
    report.written.append(secret_dir / NATS_CONFIG)
    for role in ROLES:
        path = natsconf.seed_path(secret_dir, role)
        (report.kept if had[role] else report.written).append(path)
    values = {
        name: old.get(variable) for variable, name in SECRET_VARIABLES.items() if old.get(variable)
    }
    _secret(secret_dir / "health_token", values.get("health_token"), report)
    _secret(secret_dir / "grafana_admin_password", values.get("grafana_admin_password"), report)
    if _secret(secret_dir / "s3_secret_access_key", values.get("s3_secret_access_key"), report):
        report.notes.append(
            f"note: {SECRETS_DIR}/s3_secret_access_key holds a random key, right for "
            "`--profile s3`; for your own bucket, put its secret key there"
        )
    report.notes.append("next: check .env (S3_*), then `docker compose up -d --build`")
    return report


def _secret(path: Path, value: str | None, report: Report) -> bool:
    """Write `value` (or a random one when there is none and no file yet); True if random."""
    if value is None and path.exists():
        report.kept.append(path)
        return False
    natsconf.write_secret(path, (value or secrets.token_urlsafe(32)).encode() + b"\n", FILE_MODE)
    report.written.append(path)
    return value is None
