"""Every process-level scenario goes through the strict checker: a new scenario file cannot
skip it by building its own stack (tests/README.md, "Adding a fault scenario")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PURE = {"test_invariants.py", "test_bad_input_library.py", "test_scenarios_are_checked.py"}
"""Files whose tests run no services (the checker's own tests, library properties)."""


def scenario_files() -> list[Path]:
    return sorted(p for p in HERE.glob("test_*.py") if p.name not in PURE)


def scenario_tests(path: Path) -> list[ast.AsyncFunctionDef | ast.FunctionDef]:
    tree = ast.parse(path.read_text())
    return [
        node
        for node in tree.body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        and node.name.startswith("test_")
    ]


def calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == name
        for n in ast.walk(node)
    )


def test_there_are_scenario_files() -> None:
    assert len(scenario_files()) >= 9


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: p.name)
def test_each_scenario_opens_a_scenario_and_ends_with_the_checker(path: Path) -> None:
    found = scenario_tests(path)
    assert found, f"{path.name}: no tests"
    for test in found:
        args = {a.arg for a in test.args.args}
        assert "open_scenario" in args, f"{path.name}::{test.name} does not use open_scenario"
        assert calls(test, "finish"), f"{path.name}::{test.name} never calls scenario.finish"
        assert calls(test, "assert_ok"), f"{path.name}::{test.name} never calls assert_ok"
