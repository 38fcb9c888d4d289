"""Configuration from the environment (and `.env`), validated once at start-up.

A bad value must stop a service with one line naming the variable, so
`load_settings` turns pydantic's multi-line report into `SettingsError`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_SECRET_FILE_BYTES = 64 * 1024


class Transport(StrEnum):
    NEONIZE = "neonize"
    DRYRUN = "dryrun"


class DryrunMode(StrEnum):
    REHEARSAL = "rehearsal"
    """Over a schedule it does not own: records nothing a real run would take as done."""
    RECORD = "record"
    """Over a schedule of its own (the local stack, tests): records outcomes like a real run."""


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SettingsError(Exception):
    """One human-readable line naming the variable at fault."""


def _env(name: str, *older: str) -> AliasChoices:
    return AliasChoices(name, *older)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias=_env("NATS_URL"))
    nats_replicas: int = Field(1, ge=1, le=5, validation_alias=_env("NATS_REPLICAS"))
    """Replicas of the stream and buckets in a NATS cluster (3 for a three-node cluster)."""
    nats_nkey_seed_file: Path | None = Field(None, validation_alias=_env("NATS_NKEY_SEED_FILE"))
    """This process's NATS user: a file holding its nkey seed (`SU…`), from `wasched init`."""
    nats_creds_file: Path | None = Field(None, validation_alias=_env("NATS_CREDS_FILE"))
    """Or a `.creds` file (JWT + seed) for a NATS server in operator mode."""
    nats_user: str | None = Field(None, validation_alias=_env("NATS_USER"))
    nats_password: SecretStr | None = Field(None, validation_alias=_env("NATS_PASSWORD"))
    nats_password_file: Path | None = Field(None, validation_alias=_env("NATS_PASSWORD_FILE"))
    nats_tls_ca_file: Path | None = Field(None, validation_alias=_env("NATS_TLS_CA_FILE"))
    """Verify the NATS server's certificate against this CA (else the system's CAs)."""
    nats_tls_cert_file: Path | None = Field(None, validation_alias=_env("NATS_TLS_CERT_FILE"))
    nats_tls_key_file: Path | None = Field(None, validation_alias=_env("NATS_TLS_KEY_FILE"))
    nats_tls_hostname: str | None = Field(None, validation_alias=_env("NATS_TLS_HOSTNAME"))
    """The name the server certificate must carry, when it differs from the URL's host."""
    nats_inbox_prefix: str | None = Field(None, validation_alias=_env("NATS_INBOX_PREFIX"))
    """The CLI's reply inbox (default `_INBOX.admin`); `_INBOX.client` with client credentials.
    The services always use `_INBOX.<service>`."""
    s3_endpoint: str | None = Field(None, validation_alias=_env("S3_ENDPOINT", "B2_S3_ENDPOINT"))
    s3_region: str = Field("us-east-1", validation_alias=_env("S3_REGION", "B2_REGION"))
    s3_access_key_id: SecretStr | None = Field(
        None, validation_alias=_env("S3_ACCESS_KEY_ID", "B2_ACCESS_KEY_ID")
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, validation_alias=_env("S3_SECRET_ACCESS_KEY", "B2_SECRET_ACCESS_KEY")
    )
    s3_access_key_id_file: Path | None = Field(
        None, validation_alias=_env("S3_ACCESS_KEY_ID_FILE", "B2_ACCESS_KEY_ID_FILE")
    )
    s3_secret_access_key_file: Path | None = Field(
        None, validation_alias=_env("S3_SECRET_ACCESS_KEY_FILE", "B2_SECRET_ACCESS_KEY_FILE")
    )
    s3_bucket: str = Field("wasched", validation_alias=_env("S3_BUCKET", "B2_BUCKET"), min_length=1)
    s3_prefix: str = Field("whatsapp/", validation_alias=_env("S3_PREFIX", "B2_PREFIX"))
    media_key_prefix: str | None = Field(None, validation_alias=_env("MEDIA_KEY_PREFIX"))
    """Where in the bucket media must be (`media.key`); default `{S3_PREFIX}media/`. A message
    can name no other object (not even `scheduled.json`) to be sent."""

    poll_interval_seconds: float = Field(60, gt=0, validation_alias=_env("POLL_INTERVAL_SECONDS"))
    schedule_horizon_seconds: float = Field(
        3600, gt=0, validation_alias=_env("SCHEDULE_HORIZON_SECONDS")
    )
    display_timezone: str = Field("Europe/London", validation_alias=_env("DISPLAY_TIMEZONE"))

    whatsapp_transport: Transport = Field(
        Transport.NEONIZE, validation_alias=_env("WHATSAPP_TRANSPORT")
    )
    whatsapp_session: str = Field("data/session.sqlite3", validation_alias=_env("WHATSAPP_SESSION"))
    dryrun_outbox: Path = Field(Path("data/outbox.jsonl"), validation_alias=_env("DRYRUN_OUTBOX"))
    dryrun_mode: DryrunMode = Field(DryrunMode.REHEARSAL, validation_alias=_env("DRYRUN_MODE"))
    """With `dryrun`: a rehearsal (default), or `record` for a schedule of its own."""
    send_min_gap_seconds: float = Field(15.0, ge=0, validation_alias=_env("SEND_MIN_GAP_SECONDS"))
    send_max_per_hour: int = Field(30, ge=0, validation_alias=_env("SEND_MAX_PER_HOUR"))
    """Account-safety defaults: see docs/sender.md for the reports they come from."""
    max_lateness_seconds: float = Field(86400, ge=0, validation_alias=_env("MAX_LATENESS_SECONDS"))

    overdue_alert_seconds: float = Field(300, gt=0, validation_alias=_env("OVERDUE_ALERT_SECONDS"))
    health_token: SecretStr | None = Field(None, validation_alias=_env("HEALTH_TOKEN"))
    health_token_file: Path | None = Field(None, validation_alias=_env("HEALTH_TOKEN_FILE"))
    health_port: int = Field(3002, ge=1, le=65535, validation_alias=_env("HEALTH_PORT"))
    health_host: str = Field("127.0.0.1", min_length=1, validation_alias=_env("HEALTH_HOST"))
    """Any other address than a loopback one needs `HEALTH_TOKEN` (the page links WhatsApp)."""
    health_protect_all: bool = Field(False, validation_alias=_env("HEALTH_PROTECT_ALL"))
    """With `HEALTH_TOKEN` set: also require it on /metrics and /health (default: page only)."""
    health_stale_seconds: float | None = Field(
        None, gt=0, validation_alias=_env("HEALTH_STALE_SECONDS")
    )
    """Poller heartbeat age that fails /health; default 3 poll intervals (at least 15 s)."""

    log_format: LogFormat = Field(LogFormat.TEXT, validation_alias=_env("LOG_FORMAT"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    log_pairing: bool = Field(False, validation_alias=_env("LOG_PAIRING"))
    """Print the WhatsApp linking QR code to the log even when stdout is not a terminal."""

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (expected e.g. Europe/London)") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_slash(cls, value: str) -> str:
        return value if not value or value.endswith("/") else value + "/"

    @field_validator("media_key_prefix")
    @classmethod
    def _media_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("/") or any(part in {".", ".."} for part in value.split("/")):
            raise ValueError("a key prefix such as whatsapp/media/ (no leading /, no . or ..)")
        return value if value.endswith("/") else value + "/"

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"expected nats://host:port, got {url.strip()!r}")
        return value

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        for field, file_field in SECRET_FILES.items():
            path = getattr(self, file_field)
            if path is None:
                continue
            name = _variable_name((field,))
            if getattr(self, field) is not None:
                raise ValueError(f"{name} and {name}_FILE are both set; keep one")
            setattr(self, field, SecretStr(read_secret_file(path, f"{name}_FILE")))
        return self

    @model_validator(mode="after")
    def _one_nats_identity(self) -> Settings:
        chosen = [
            name
            for name, value in (
                ("NATS_NKEY_SEED_FILE", self.nats_nkey_seed_file),
                ("NATS_CREDS_FILE", self.nats_creds_file),
                ("NATS_USER", self.nats_user),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            raise ValueError(
                "choose one of NATS_NKEY_SEED_FILE, NATS_CREDS_FILE, NATS_USER "
                f"(set: {', '.join(chosen)})"
            )
        if self.nats_user is not None and self.nats_password is None:
            raise ValueError("NATS_USER is set without NATS_PASSWORD (or NATS_PASSWORD_FILE)")
        if self.nats_password is not None and self.nats_user is None:
            raise ValueError("NATS_PASSWORD is set without NATS_USER")
        if (self.nats_tls_cert_file is None) != (self.nats_tls_key_file is None):
            raise ValueError("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together")
        for name, path in (
            ("NATS_NKEY_SEED_FILE", self.nats_nkey_seed_file),
            ("NATS_CREDS_FILE", self.nats_creds_file),
            ("NATS_TLS_CA_FILE", self.nats_tls_ca_file),
            ("NATS_TLS_CERT_FILE", self.nats_tls_cert_file),
            ("NATS_TLS_KEY_FILE", self.nats_tls_key_file),
        ):
            if path is not None:
                _readable(path, name)
        return self

    @property
    def nats_servers(self) -> list[str]:
        """`NATS_URL` may list several servers of a cluster, comma-separated."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @property
    def rehearsal(self) -> bool:
        """A dry run over a schedule it does not own: it reads the schedule and writes only to
        its own outbox, log and NATS names (`topology.REHEARSAL`), never to the schedule."""
        return (
            self.whatsapp_transport is Transport.DRYRUN and self.dryrun_mode is DryrunMode.REHEARSAL
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)

    @property
    def document_key(self) -> str:
        return f"{self.s3_prefix}scheduled.json"

    @property
    def media_prefix(self) -> str:
        """`MEDIA_KEY_PREFIX`, else `{S3_PREFIX}media/`: the only keys media may be read from."""
        return self.media_key_prefix or f"{self.s3_prefix}media/"


SECRET_FILES = {
    "s3_access_key_id": "s3_access_key_id_file",
    "s3_secret_access_key": "s3_secret_access_key_file",
    "health_token": "health_token_file",
    "nats_password": "nats_password_file",
}
"""Secret → its `NAME_FILE` twin (the Docker secrets convention): the file's content, less a
trailing newline, is the value."""


def _readable(path: Path, variable: str) -> None:
    if not path.is_file():
        raise ValueError(f"{variable}={path}: no such file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"{variable}={path}: cannot read it ({exc.strerror})") from None


def read_secret_file(path: Path, variable: str) -> str:
    _readable(path, variable)
    if path.stat().st_size > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{variable}={path}: larger than 64 KiB, not a secret value")
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{variable}={path}: not UTF-8 text") from None
    if not value.strip():
        raise ValueError(f"{variable}={path}: the file is empty")
    return value


def _variable_name(loc: tuple[int | str, ...], cls: type[Settings] = Settings) -> str:
    field = str(loc[0]) if loc else "?"
    alias = cls.model_fields[field].validation_alias if field in cls.model_fields else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field.upper()


S = TypeVar("S", bound=Settings)


@overload
def load_settings(**overrides: object) -> Settings: ...
@overload
def load_settings(settings_cls: type[S], /, **overrides: object) -> S: ...
def load_settings(settings_cls: type[Settings] = Settings, /, **overrides: object) -> Settings:
    """Read the environment once; raise `SettingsError` with one line per bad variable.

    A service with variables of its own passes its `Settings` subclass first.
    """
    try:
        return settings_cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a check across variables: its message names them
                problems.append(msg)
                continue
            name = _variable_name(err["loc"], settings_cls)
            problems.append(
                f"{name}={err.get('input')!r}: {msg}"
                if name not in _SECRET_VARS
                else f"{name}: {msg}"
            )
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


_SECRET_VARS = {
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
    "HEALTH_TOKEN",
    "WHATSAPP_PROXY",
    "NATS_PASSWORD",
}
