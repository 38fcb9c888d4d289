import pytest

from wasched.common.settings import Settings, SettingsError, Transport, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(
            ("S3_", "B2_", "NATS_", "WHATSAPP_", "HEALTH_", "POLL_", "SEND_", "LOG_")
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_design() -> None:
    s = load_settings()
    assert s.nats_url == "nats://127.0.0.1:4222"
    assert s.s3_prefix == "whatsapp/"
    assert s.poll_interval_seconds == 60
    assert s.display_timezone == "Europe/London"
    assert s.health_port == 3002
    assert s.max_lateness_seconds == 86400
    assert s.document_key == "whatsapp/scheduled.json"


def test_older_b2_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2_S3_ENDPOINT", "https://s3.eu-central-003.backblazeb2.com")
    monkeypatch.setenv("B2_ACCESS_KEY_ID", "keyid")
    monkeypatch.setenv("B2_SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("B2_BUCKET", "my-bucket")
    monkeypatch.setenv("B2_PREFIX", "wa")
    s = load_settings()
    assert s.s3_endpoint == "https://s3.eu-central-003.backblazeb2.com"
    assert s.s3_bucket == "my-bucket"
    assert s.s3_prefix == "wa/"
    assert s.s3_secret_access_key is not None
    assert s.s3_secret_access_key.get_secret_value() == "very-secret"


def test_new_names_win_over_old(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B2_BUCKET", "old")
    monkeypatch.setenv("S3_BUCKET", "new")
    assert load_settings().s3_bucket == "new"


def test_dotenv_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("WHATSAPP_TRANSPORT=dryrun\nPOLL_INTERVAL_SECONDS=5\n")
    s = load_settings()
    assert s.whatsapp_transport is Transport.DRYRUN
    assert s.poll_interval_seconds == 5


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "POLL_INTERVAL_SECONDS",
            "soon",
            "POLL_INTERVAL_SECONDS='soon': Input should be a valid number",
        ),
        ("POLL_INTERVAL_SECONDS", "0", "POLL_INTERVAL_SECONDS='0': Input should be greater than 0"),
        (
            "WHATSAPP_TRANSPORT",
            "telegram",
            "WHATSAPP_TRANSPORT='telegram': Input should be 'neonize' or 'dryrun'",
        ),
        ("DISPLAY_TIMEZONE", "Mars/Olympus", "DISPLAY_TIMEZONE='Mars/Olympus': unknown time zone"),
        (
            "HEALTH_PORT",
            "70000",
            "HEALTH_PORT='70000': Input should be less than or equal to 65535",
        ),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD': expected one of DEBUG"),
        ("NATS_URL", "localhost:4222", "NATS_URL='localhost:4222': expected nats://host:port"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml': Input should be 'text' or 'json'"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert says in text
    assert "\n" not in text


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "hunter2-secret")
    monkeypatch.setenv("HEALTH_TOKEN", "tok-secret")
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    assert "tok-secret" not in repr(s)


def test_bad_secret_value_error_does_not_echo_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(s3_access_key_id=["not", "a", "string-secret"])
    assert "string-secret" not in str(info.value)
    assert "S3_ACCESS_KEY_ID" in str(info.value)


def test_settings_model_lists_every_design_variable() -> None:
    design = {
        "NATS_URL",
        "S3_ENDPOINT",
        "S3_REGION",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "S3_BUCKET",
        "S3_PREFIX",
        "POLL_INTERVAL_SECONDS",
        "SCHEDULE_HORIZON_SECONDS",
        "DISPLAY_TIMEZONE",
        "WHATSAPP_TRANSPORT",
        "WHATSAPP_SESSION",
        "DRYRUN_OUTBOX",
        "SEND_MIN_GAP_SECONDS",
        "SEND_MAX_PER_HOUR",
        "OVERDUE_ALERT_SECONDS",
        "HEALTH_TOKEN",
        "MAX_LATENESS_SECONDS",
        "HEALTH_PORT",
        "LOG_FORMAT",
        "LOG_LEVEL",
    }
    names = {f.validation_alias.choices[0] for f in Settings.model_fields.values()}  # type: ignore[union-attr]
    assert design <= names


def test_empty_values_count_as_unset(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("HEALTH_TOKEN=\nPOLL_INTERVAL_SECONDS=\n")
    s = load_settings()
    assert s.health_token is None
    assert s.poll_interval_seconds == 60
