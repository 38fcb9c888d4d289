import pytest

from wasched.common.settings import Settings, SettingsError, Transport, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(
            ("S3_", "B2_", "NATS_", "WHATSAPP_", "HEALTH_", "POLL_", "SEND_", "LOG_", "GRAFANA_")
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


# ---- secrets as files (Docker secrets convention: NAME_FILE) ------------------------------


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("S3_SECRET_ACCESS_KEY", "s3_secret_access_key"),
        ("S3_ACCESS_KEY_ID", "s3_access_key_id"),
        ("HEALTH_TOKEN", "health_token"),
        ("NATS_PASSWORD", "nats_password"),
    ],
)
def test_a_secret_is_read_from_its_file(
    tmp_path, monkeypatch: pytest.MonkeyPatch, variable: str, field: str
) -> None:
    secret = tmp_path / "run-secrets" / variable.lower()
    secret.parent.mkdir()
    secret.write_text("from-a-file-secret\n")  # editors and `echo` add a newline
    monkeypatch.setenv(f"{variable}_FILE", str(secret))
    if variable == "NATS_PASSWORD":
        monkeypatch.setenv("NATS_USER", "poller")
    value = getattr(load_settings(), field)
    assert value is not None
    assert value.get_secret_value() == "from-a-file-secret"


def test_secret_files_work_from_dotenv_and_for_the_old_b2_name(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("b2-secret")
    (tmp_path / ".env").write_text(f"B2_SECRET_ACCESS_KEY_FILE={tmp_path / 'key'}\n")
    value = load_settings().s3_secret_access_key
    assert value is not None and value.get_secret_value() == "b2-secret"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "HEALTH_TOKEN_FILE={path}: no such file"),
        ("\n", "HEALTH_TOKEN_FILE={path}: the file is empty"),
        ("a" * 70_000, "HEALTH_TOKEN_FILE={path}: larger than 64 KiB"),
    ],
)
def test_a_bad_secret_file_is_one_line_naming_the_variable(
    tmp_path, monkeypatch: pytest.MonkeyPatch, content: str | None, says: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("HEALTH_TOKEN_FILE", str(path))
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert says.format(path=path) in text
    assert "\n" not in text


def test_a_secret_and_its_file_together_are_refused(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("file-secret")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert "S3_SECRET_ACCESS_KEY and S3_SECRET_ACCESS_KEY_FILE are both set" in text
    assert "env-secret" not in text and "file-secret" not in text


def test_a_secret_read_from_a_file_is_never_shown(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("hunter3-secret")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY_FILE", str(tmp_path / "key"))
    s = load_settings()
    assert "hunter3" not in repr(s)


# ---- NATS credentials ---------------------------------------------------------------------


def test_nats_credentials_default_to_none() -> None:
    s = load_settings()
    assert s.nats_nkey_seed_file is None and s.nats_user is None and s.nats_creds_file is None


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"NATS_NKEY_SEED_FILE": "{missing}"}, "NATS_NKEY_SEED_FILE={missing}: no such file"),
        ({"NATS_USER": "poller"}, "NATS_USER is set without NATS_PASSWORD"),
        ({"NATS_PASSWORD": "x-secret"}, "NATS_PASSWORD is set without NATS_USER"),
        (
            {"NATS_USER": "poller", "NATS_PASSWORD": "x-secret", "NATS_NKEY_SEED_FILE": "{seed}"},
            "choose one of NATS_NKEY_SEED_FILE, NATS_CREDS_FILE, NATS_USER",
        ),
        ({"NATS_TLS_CERT_FILE": "{seed}"}, "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together"),
    ],
)
def test_bad_nats_credentials_are_one_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    seed = tmp_path / "seed.nk"
    seed.write_text("SUAEXAMPLE\n")
    paths = {"missing": tmp_path / "nope.nk", "seed": seed}
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(**paths))
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert says.format(**paths) in text
    assert "x-secret" not in text
    assert "\n" not in text
