"""The sender's own settings, on top of the shared ones (environment, `.env`).

Everything here has a safe default; the shared `Settings` already carries
`WHATSAPP_TRANSPORT`, `WHATSAPP_SESSION`, `DRYRUN_OUTBOX`, `SEND_MIN_GAP_SECONDS`,
`SEND_MAX_PER_HOUR` and `MAX_LATENESS_SECONDS`. The account-safety defaults come from
what whatsmeow, Baileys, WAHA and Evolution API users report about bans (docs/sender.md).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator

from wasched.common.media import parse_limits
from wasched.common.recipients import InvalidRecipient, parse_recipient
from wasched.common.settings import Settings, load_settings
from wasched.sender.media import FetchLimits


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class SenderSettings(Settings):
    send_jitter_seconds: float = Field(15.0, ge=0, validation_alias=_env("SEND_JITTER_SECONDS"))
    """Random extra gap in [0, this] added after every send."""
    send_max_per_day: int = Field(100, ge=0, validation_alias=_env("SEND_MAX_PER_DAY"))
    """Sends in any 24 hours (0 = no cap)."""
    send_same_text_max_recipients: int = Field(
        5, ge=0, validation_alias=_env("SEND_SAME_TEXT_MAX_RECIPIENTS")
    )
    """One text goes to at most this many recipients per window; more wait (0 = no guard)."""
    send_same_text_window_seconds: float = Field(
        3600.0, gt=0, validation_alias=_env("SEND_SAME_TEXT_WINDOW_SECONDS")
    )
    send_ramp_seconds: float = Field(86400.0, ge=0, validation_alias=_env("SEND_RAMP_SECONDS"))
    """After a temporary ban, the pace grows from a tenth to full over this long (0 = off)."""
    lookup_min_gap_seconds: float = Field(
        5.0, ge=0, validation_alias=_env("LOOKUP_MIN_GAP_SECONDS")
    )
    """Between two "is this number on WhatsApp" lookups."""
    lookup_max_per_hour: int = Field(30, ge=0, validation_alias=_env("LOOKUP_MAX_PER_HOUR"))
    lookup_backoff_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("LOOKUP_BACKOFF_SECONDS")
    )
    """A failed lookup waits this long, doubling per failure (at most an hour)."""
    lookup_cache_seconds: float = Field(
        7 * 86400.0, gt=0, validation_alias=_env("LOOKUP_CACHE_SECONDS")
    )
    """How long a lookup's answer is kept (KV bucket `wasched-lookups`)."""
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
    sender_liveness_seconds: float = Field(
        15.0, ge=1, le=600, validation_alias=_env("SENDER_LIVENESS_SECONDS")
    )
    """A sender that stopped refreshing its key for this long (twice over) is gone: only then
    does a claim it holds become `interrupted`."""
    sender_journal: Path | None = Field(None, validation_alias=_env("SENDER_JOURNAL"))
    """Local journal of results not yet in NATS (default: beside the WhatsApp session)."""

    whatsapp_proxy: str | None = Field(None, validation_alias=_env("WHATSAPP_PROXY"))
    """`socks5://host:port` or `http://host:port` for the WhatsApp connection."""
    whatsapp_connect_attempts: int = Field(
        5, ge=1, le=100, validation_alias=_env("WHATSAPP_CONNECT_ATTEMPTS")
    )
    whatsapp_connect_backoff_seconds: float = Field(
        2.0, ge=0, validation_alias=_env("WHATSAPP_CONNECT_BACKOFF_SECONDS")
    )
    whatsapp_pairing_window_seconds: float = Field(
        180.0, gt=0, validation_alias=_env("WHATSAPP_PAIRING_WINDOW_SECONDS")
    )
    whatsapp_take_over: bool = Field(False, validation_alias=_env("WHATSAPP_TAKE_OVER"))
    """Take the session back at start even if another client replaced this one before."""
    whatsapp_probe_seconds: float = Field(
        10.0, gt=0, le=300, validation_alias=_env("WHATSAPP_PROBE_SECONDS")
    )
    """How often the WhatsApp socket is checked for life (some drops send no event)."""
    neonize_bot_tag: str = Field("off", validation_alias=_env("NEONIZE_BOT_TAG"))

    media_max_bytes: str = Field("", validation_alias=_env("MEDIA_MAX_BYTES"))
    """Size limits per media type over WhatsApp's own, e.g. `video=64MiB,document=2GiB`."""
    media_fetch_timeout_seconds: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("MEDIA_FETCH_TIMEOUT_SECONDS")
    )
    """One fetch of a media file (or a link preview), before the claim."""
    media_url_allow_private: bool = Field(False, validation_alias=_env("MEDIA_URL_ALLOW_PRIVATE"))
    """Fetch media URLs (and link previews) from private and local addresses too."""
    media_upload_timeout_seconds: float = Field(
        300.0, gt=0, le=3600, validation_alias=_env("MEDIA_UPLOAD_TIMEOUT_SECONDS")
    )
    """Preparing a media message after the claim: the upload to WhatsApp's media servers and
    ffprobe/ffmpeg. Not part of `SEND_TIMEOUT_SECONDS`; running out is `failed`."""

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

    @field_validator("media_max_bytes")
    @classmethod
    def _limits(cls, value: str) -> str:
        parse_limits(value)  # its ValueError names the bad part
        return value

    @field_validator("whatsapp_proxy")
    @classmethod
    def _proxy_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("socks5://", "http://", "https://")):
            raise ValueError("expected socks5://host:port or http://host:port")
        return value or None

    @property
    def session_path(self) -> Path | None:
        """`WHATSAPP_SESSION` as a file path (`~` expanded), or None for a database URL."""
        if "://" in self.whatsapp_session:
            return None
        return Path(self.whatsapp_session).expanduser()

    @property
    def journal_path(self) -> Path:
        """A rehearsal keeps its own (`*.rehearsal.jsonl`): a real sender settles what its
        journal holds into the real ledger, and must never find a rehearsed send there."""
        if self.sender_journal is not None:
            path = self.sender_journal.expanduser()
        else:
            session = self.session_path
            folder = session.parent if session is not None else Path("data")
            path = folder / "sender-journal.jsonl"
        return path.with_name(f"{path.stem}.rehearsal{path.suffix}") if self.rehearsal else path

    @property
    def fetch_limits(self) -> FetchLimits:
        return FetchLimits.from_values(
            self.media_max_bytes, self.media_fetch_timeout_seconds, self.media_url_allow_private
        )

    @property
    def not_on_whatsapp(self) -> frozenset[str]:
        """The dryrun "not on WhatsApp" numbers as JIDs."""
        items = (part.strip() for part in self.dryrun_not_on_whatsapp.split(","))
        return frozenset(parse_recipient(item).jid for item in items if item)


def load_sender_settings(**overrides: object) -> SenderSettings:
    return load_settings(SenderSettings, **overrides)
