"""deploy/: Prometheus scrape config, alert rules (promtool) and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# The health service's exposition, as issue 5 specifies it (the reference list).
EXPORTED = {
    "wasched_messages_total": {"status", "error_kind"},
    "wasched_receipts_total": {"kind"},
    "wasched_send_lateness_seconds": {"le"},
    "wasched_pending_messages": set(),
    "wasched_overdue_messages": set(),
    "wasched_oldest_overdue_seconds": set(),
    "wasched_scheduled_in_nats": set(),
    "wasched_poll_cycle_seconds": {"le"},
    "wasched_poll_last_success_timestamp_seconds": set(),
    "wasched_s3_errors_total": {"kind"},
    "wasched_store_conditional_writes": set(),
    "wasched_whatsapp_state": {"state"},
    "wasched_whatsapp_connected": set(),
    "wasched_rejected_events_total": {"subject"},
    "wasched_component_up": {"component"},
    "wasched_poll_interval_seconds": set(),
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
    "up": set(),  # Prometheus' own, per scrape target
}
HISTOGRAMS = {"wasched_send_lateness_seconds", "wasched_poll_cycle_seconds"}
TARGET_LABELS = {"job", "instance"}

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


def known_series() -> dict[str, set[str]]:
    """Metric names a query may use, with their labels (histograms add _bucket/_sum/_count)."""
    names = dict(EXPORTED)
    for base in HISTOGRAMS:
        for suffix in ("_bucket", "_sum", "_count"):
            names[base + suffix] = EXPORTED[base]
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords or labels)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges like [5m] or [$__rate_interval]
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(grouping, "", text)
    found = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(\s*\()?", text):
        name, call = match[1], match[2]
        if call or name in _KEYWORDS:
            continue
        found.add(name)
    return found


def labels_used(expr: str) -> set[str]:
    names = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", " ".join(re.findall(r"\{([^}]*)\}", expr))))
    grouping = r"\b(?:by|without)\s*\(([^)]*)\)"
    for group in re.findall(grouping, expr):
        names |= {label.strip() for label in group.split(",") if label.strip()}
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (status) (increase(wasched_messages_total{status="sent"}[1h]))',
         {"wasched_messages_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))", {"x_bucket"}),
        ("time() - max(wasched_poll_last_success_timestamp_seconds) > 300",
         {"wasched_poll_last_success_timestamp_seconds"}),
        ("a == 0 or (b and on(job) c)", {"a", "b", "c"}),
    ],
)  # fmt: skip
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def _dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "wasched.json").read_text())


def _queries() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_dashboard_query_names_only_exported_metrics() -> None:
    known = known_series()
    queries = _queries()
    assert len(queries) >= 10
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= set(known), f"{expr!r} reads unknown {names - set(known)}"
        allowed = set().union(*(known[n] for n in names)) | TARGET_LABELS
        assert labels_used(expr) <= allowed, f"{expr!r} uses labels {labels_used(expr) - allowed}"


def test_dashboard_covers_what_operators_asked_for() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "wasched"
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Messages per hour by status",
        "Send lateness (percentiles)",
        "Pending and overdue",
        "WhatsApp state",
        "Poll cycle time",
        "S3 errors",
    ):
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    lateness = next(p for p in dashboard["panels"] if p["title"].startswith("Send lateness"))
    assert {t["legendFormat"] for t in lateness["targets"]} == {"p50", "p95", "p99"}


def test_dashboard_picks_its_datasource_so_it_imports_into_any_grafana() -> None:
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert {d["url"] for d in provisioned} == {"http://prometheus:9090"}
    assert {d["type"] for d in provisioned} == {"prometheus"}
    dashboard = _dashboard()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    chosen = {"type": "prometheus", "uid": f"${{{variable['name']}}}"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == chosen, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == chosen, panel["title"]
    assert "wasched-prometheus" not in json.dumps(dashboard), "no fixed datasource uid left"
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "wasched.yml").read_text()
    )["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/dashboards"


def test_alert_rules_cover_the_failures_and_name_exported_metrics() -> None:
    rules = {rule["alert"]: rule for rule in _alerts()}
    assert {"WaschedPollerSilent", "WaschedSenderNotConnected", "WaschedMessagesOverdue",
            "WaschedFailureRatioHigh", "WaschedWhatsAppLoggedOutOrBanned",
            "WaschedS3Errors"} <= set(rules)  # fmt: skip
    assert rules["WaschedSenderNotConnected"]["for"] == "5m"
    known = known_series()
    for name, rule in rules.items():
        assert metric_names(rule["expr"]) <= set(known), name
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_prometheus_scrapes_the_health_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "wasched"
    assert job["static_configs"][0]["targets"] == ["health:3002"]


def _amtool() -> str:
    found = shutil.which("amtool")
    if not found:
        pytest.skip("amtool is not installed (Debian package `prometheus-alertmanager`)")
    return found


def test_alertmanager_config_and_its_documented_receivers_are_valid(tmp_path: Path) -> None:
    """The shipped file, and each commented receiver example once filled in, pass amtool."""
    text = (DEPLOY / "alertmanager.yml").read_text()
    assert _run(_amtool(), "check-config", "alertmanager.yml").returncode == 0
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"\s*# (webhook|email)_configs:", line)]
    assert len(starts) == 2, "a webhook and an e-mail example"
    for start in starts:
        block = []
        for line in lines[start:]:
            if not line.strip().startswith("#") or line.strip().startswith("# ---"):
                if block:
                    break
                continue
            block.append(line.replace("# ", "", 1))
        filled = "\n".join(lines[:start] + block + lines[start + len(block) :])
        example = tmp_path / f"example-{start}.yml"
        example.write_text(filled)
        result = _run(_amtool(), "check-config", str(example))
        assert result.returncode == 0, result.stdout + result.stderr
        receivers = yaml.safe_load(filled)["receivers"][0]
        assert {"webhook_configs", "email_configs"} & set(receivers), filled


def test_alerts_reach_the_operator_receiver() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    assert config["route"]["receiver"] == "operator"
    assert [r["name"] for r in config["receivers"]] == ["operator"]


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool is not installed (Debian package `prometheus`; .ci/run installs it)")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=DEPLOY)


def test_promtool_accepts_the_rules_and_the_config() -> None:
    promtool = _promtool()
    rules = _run(promtool, "check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in rules.stdout
    config = _run(promtool, "check", "config", "--syntax-only", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_alerts_fire_when_they_should_and_only_then() -> None:
    """deploy/alerts.test.yml feeds series to the rules and states which alerts must fire."""
    result = _run(_promtool(), "test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts.test.yml").read_text()))
    assert tested == {rule["alert"] for rule in _alerts()}, "every alert has a rule test"
