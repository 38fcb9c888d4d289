"""docs/asyncapi.yaml: current with the event models, and what other systems rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from wasched.cli.asyncapi import render_yaml
from wasched.common import topology
from wasched.common.events import CancelRequest, Reply, ScheduleRequest, SendRequest

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def test_committed_asyncapi_is_current() -> None:
    assert DOC.read_text() == render_yaml(), "docs/asyncapi.yaml is stale: run `make asyncapi`"


def test_inbound_and_outbound_subjects_and_payloads() -> None:
    doc = yaml.safe_load(DOC.read_text())
    assert doc["asyncapi"].startswith("3.")
    actions = {op["channel"]["$ref"].split("/")[-1]: op["action"]
               for op in doc["operations"].values()}  # fmt: skip
    for subject in (topology.SEND, topology.SCHEDULE, topology.CANCEL):
        assert actions[subject] == "receive"
    for subject in (topology.OUTCOME, topology.RECEIPT, topology.SENDER_STATUS):
        assert actions[subject] == "send"
    schemas = doc["components"]["schemas"]
    assert set(schemas["ScheduleRequest"]["required"]) == {"id", "to", "message", "scheduledTime"}
    assert set(schemas["Reply"]["properties"]) == {"ok", "error", "id"}
    assert topology.REPLY_HEADER in doc["info"]["description"]


def test_documented_examples_are_accepted_by_the_models() -> None:
    """The JSON shown for other systems in docs/running.md validates against the models."""
    examples = [
        (
            SendRequest,
            '{"id": "order-1234", "to": "447957189696", "message": "Your order shipped"}',
        ),
        (
            ScheduleRequest,
            '{"id": "1735168500123_a1b2c3", "to": "+44 7957 189696", "contactName": "Reem",'
            ' "message": "Happy Birthday!", "scheduledTime": "2030-12-24T10:00:00Z"}',
        ),
        (CancelRequest, '{"id": "1735168500123_a1b2c3"}'),
        (Reply, '{"ok": false, "error": "scheduledTime: not an ISO-8601 time"}'),
    ]
    running = (DOC.parent / "running.md").read_text()
    for model, example in examples:
        model.model_validate_json(example)
        assert example in running, f"running.md no longer shows {example}"


def test_faststream_cli_generates_the_same_document(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    faststream = str(Path(sys.executable).parent / "faststream")
    result = subprocess.run(
        [faststream, "docs", "gen", "wasched.cli.asyncapi:app", "--yaml", "--out", str(out)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(DOC.read_text())
