"""The sender's own settings, on top of the shared ones (environment, `.env`).

Everything here has a safe default; the shared `Settings` already carries
`WHATSAPP_TRANSPORT`, `WHATSAPP_SESSION`, `DRYRUN_OUTBOX`, `SEND_MIN_GAP_SECONDS`,
`SEND_MAX_PER_HOUR` and `MAX_LATENESS_SECONDS`.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator

from wasched.common.recipients import InvalidRecipient, parse_recipient
from wasched.common.settings import Settings, load_settings


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class SenderSettings(Settings):
    send_jitter_seconds: float = Field(2.0, ge=0, validation_alias=_env("SEND_JITTER_SECONDS"))
    """Random extra gap in [0, this] added after every send."""
    send_typing_seconds: float = Field(
        0.0, ge=0, le=30, validation_alias=_env("SEND_TYPING_SECONDS")
    )
    """Show "typing…" this long before each send (0 = off)."""
    send_timeout_seconds: float = Field(90.0, gt=0, validation_alias=_env("SEND_TIMEOUT_SECONDS"))
    """A send not answered by then is `interrupted` (whatsmeow itself gives up after 75 s)."""
    sender_ack_wait_seconds: float = Field(
        60.0, ge=1, validation_alias=_env("SENDER_ACK_WAIT_SECONDS")
    )
    """JetStream redelivers a message this long after a crashed sender fetched it."""
    sender_shutdown_grace_seconds: float = Field(
        10.0, ge=0, validation_alias=_env("SENDER_SHUTDOWN_GRACE_SECONDS")
    )
    status_interval_seconds: float = Field(
        5.0, gt=0, le=60, validation_alias=_env("STATUS_INTERVAL_SECONDS")
    )

    whatsapp_proxy: str | None = Field(None, validation_alias=_env("WHATSAPP_PROXY"))
    """`socks5://host:port` or `http://host:port` for the WhatsApp connection."""
    whatsapp_connect_attempts: int = Field(
        5, ge=1, le=100, validation_alias=_env("WHATSAPP_CONNECT_ATTEMPTS")
    )
    whatsapp_connect_backoff_seconds: float = Field(
        2.0, ge=0, validation_alias=_env("WHATSAPP_CONNECT_BACKOFF_SECONDS")
    )
    whatsapp_replaced_backoff_seconds: float = Field(
        60.0, ge=0, validation_alias=_env("WHATSAPP_REPLACED_BACKOFF_SECONDS")
    )
    whatsapp_pairing_window_seconds: float = Field(
        180.0, gt=0, validation_alias=_env("WHATSAPP_PAIRING_WINDOW_SECONDS")
    )
    neonize_bot_tag: str = Field("off", validation_alias=_env("NEONIZE_BOT_TAG"))

    dryrun_not_on_whatsapp: str = Field("", validation_alias=_env("DRYRUN_NOT_ON_WHATSAPP"))
    """Comma-separated numbers the dryrun transport answers "not on WhatsApp" for."""
    dryrun_send_delay_seconds: float = Field(
        0.0, ge=0, le=3600, validation_alias=_env("DRYRUN_SEND_DELAY_SECONDS")
    )
    """Test hook: the dryrun transport waits this long after writing each outbox line."""

    @field_validator("dryrun_not_on_whatsapp")
    @classmethod
    def _numbers(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                parse_recipient(item)
            except InvalidRecipient as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("whatsapp_proxy")
    @classmethod
    def _proxy_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("socks5://", "http://", "https://")):
            raise ValueError("expected socks5://host:port or http://host:port")
        return value or None

    @property
    def not_on_whatsapp(self) -> frozenset[str]:
        """The dryrun "not on WhatsApp" numbers as JIDs."""
        items = (part.strip() for part in self.dryrun_not_on_whatsapp.split(","))
        return frozenset(parse_recipient(item).jid for item in items if item)


def load_sender_settings(**overrides: object) -> SenderSettings:
    return load_settings(SenderSettings, **overrides)
