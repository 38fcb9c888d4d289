"""Sender settings: sensible defaults, one clear line naming a bad variable."""

from __future__ import annotations

import pytest

from wasched.common.media import MediaKind
from wasched.common.settings import SettingsError
from wasched.sender.config import load_sender_settings


def test_defaults() -> None:
    settings = load_sender_settings(_env_file=None)
    # account safety (docs/sender.md cites the reports): 15-30 s apart, 30 an hour, 100 a day
    assert (settings.send_min_gap_seconds, settings.send_jitter_seconds) == (15.0, 15.0)
    assert (settings.send_max_per_hour, settings.send_max_per_day) == (30, 100)
    assert settings.send_same_text_max_recipients == 5
    assert settings.send_ramp_seconds == 86400
    assert (settings.lookup_min_gap_seconds, settings.lookup_max_per_hour) == (5.0, 30)
    assert settings.whatsapp_take_over is False
    assert settings.send_typing_seconds == 0.0
    assert settings.whatsapp_connect_attempts == 5
    assert settings.neonize_bot_tag == "off"
    assert settings.not_on_whatsapp == frozenset()


def test_dryrun_not_on_whatsapp_numbers_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRYRUN_NOT_ON_WHATSAPP", "+44 7957 189696, 447911123456")
    settings = load_sender_settings(_env_file=None)
    assert settings.not_on_whatsapp == {
        "447957189696@s.whatsapp.net",
        "447911123456@s.whatsapp.net",
    }


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DRYRUN_NOT_ON_WHATSAPP", "447957189696,12", "DRYRUN_NOT_ON_WHATSAPP='447957189696,12'"),
        ("WHATSAPP_PROXY", "ftp://u:secret@x:1", "WHATSAPP_PROXY: expected socks5://"),
        ("SEND_JITTER_SECONDS", "-1", "SEND_JITTER_SECONDS='-1'"),
        ("WHATSAPP_CONNECT_ATTEMPTS", "0", "WHATSAPP_CONNECT_ATTEMPTS='0'"),
        ("SEND_MIN_GAP_SECONDS", "soon", "SEND_MIN_GAP_SECONDS='soon'"),
        ("MEDIA_MAX_BYTES", "video=lots", "'video=lots': expected TYPE=SIZE, e.g. video=16MiB"),
        ("MEDIA_MAX_BYTES", "gif=1MiB", "'gif' is not a media type"),
        ("MEDIA_KEY_PREFIX", "/media", "MEDIA_KEY_PREFIX='/media': a key prefix such as"),
        ("MEDIA_FETCH_TIMEOUT_SECONDS", "0", "MEDIA_FETCH_TIMEOUT_SECONDS='0'"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match="invalid configuration") as caught:
        load_sender_settings(_env_file=None)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "secret" not in str(caught.value), "a proxy URL may hold a password"


def test_the_journal_lives_beside_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/wasched")
    monkeypatch.setenv("WHATSAPP_SESSION", "~/wa/session.sqlite3")
    settings = load_sender_settings(_env_file=None)
    assert str(settings.session_path) == "/home/wasched/wa/session.sqlite3"
    assert str(settings.journal_path) == "/home/wasched/wa/sender-journal.jsonl"
    monkeypatch.setenv("WHATSAPP_SESSION", "postgres://u:p@db/wa")
    assert str(load_sender_settings(_env_file=None).journal_path) == "data/sender-journal.jsonl"
    monkeypatch.setenv("SENDER_JOURNAL", "/var/lib/wasched/journal.jsonl")
    assert (
        str(load_sender_settings(_env_file=None).journal_path) == "/var/lib/wasched/journal.jsonl"
    )


def test_logged_nats_location_never_shows_credentials() -> None:
    from wasched.sender.__main__ import nats_location

    urls = "nats://user:s3cret@nats-1:4222, tls://nats-2"
    assert nats_location(urls) == "nats-1:4222, nats-2:4222"


def test_media_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_sender_settings(_env_file=None)
    assert settings.media_prefix == "whatsapp/media/", "beside the schedule by default"
    limits = settings.fetch_limits
    assert (limits.timeout, limits.allow_private) == (30.0, False)
    assert limits.max_bytes[MediaKind.VIDEO] == 16 * 1024 * 1024
    assert settings.media_upload_timeout_seconds == 300.0
    monkeypatch.setenv("S3_PREFIX", "wa")
    monkeypatch.setenv("MEDIA_MAX_BYTES", "video=64MiB")
    monkeypatch.setenv("MEDIA_URL_ALLOW_PRIVATE", "true")
    settings = load_sender_settings(_env_file=None)
    assert settings.media_prefix == "wa/media/"
    assert settings.fetch_limits.max_bytes[MediaKind.VIDEO] == 64 * 1024 * 1024
    assert settings.fetch_limits.allow_private is True
    monkeypatch.setenv("MEDIA_KEY_PREFIX", "shared/uploads")
    assert load_sender_settings(_env_file=None).media_prefix == "shared/uploads/"
