"""docs/reliability.md from a real run of the fault suite: hand-written prose, generated figures.

`make reliability` runs the fault scenarios with `--wasched-figures=PATH` (every
scenario's asserted figures, as JSON), then `python -m tests.faults.reliability PATH
docs/reliability.md` copies the figures to docs/reliability.figures.json and renders
docs/reliability.template.md with them. Only asserted figures exist (`Scenario.expect`),
so the page holds no figure a test does not enforce; tests/faults/test_reliability_doc.py
checks the committed page is exactly this rendering.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.faults.summary import Summary

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "reliability.template.md"
FIGURES = ROOT / "docs" / "reliability.figures.json"
PLACEHOLDER = "<!-- figures -->"


def load(path: Path) -> tuple[dict[str, str], list[Summary]]:
    data = json.loads(path.read_text())
    return data["run"], [Summary.from_json(json.dumps(s)) for s in data["scenarios"]]


def table(summaries: list[Summary]) -> str:
    rows = [
        "| scenario | asserted figures (this run) | seed |",
        "|---|---|---|",
    ]
    for summary in sorted(summaries, key=lambda s: _numbered(s.scenario)):
        figures = "; ".join(f.text() for f in summary.figures) or "—"
        rows.append(f"| {summary.scenario} | {figures} | {summary.seed} |")
    return "\n".join(rows)


def _numbered(scenario: str) -> tuple[int, str]:
    """Scenarios in their numbers' order (2 before 11), then by name."""
    number, _, rest = scenario.partition(" ")
    return (int(number), rest) if number.isdigit() else (10**6, scenario)


def render(template: str, run: dict[str, str], summaries: list[Summary]) -> str:
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"the template needs exactly one {PLACEHOLDER}")
    failing = [f"{s.scenario}: {f.text()}" for s in summaries for f in s.figures if not f.holds()]
    if failing:
        raise ValueError(f"figures of a failing run cannot be published: {failing}")
    made = (
        f"Figures from a run of the fault scenarios (`make reliability`) on {run['date']} "
        f"(commit {run['commit']}, "
        f"{run['machine']}); generated, do not edit: the prose is in "
        "docs/reliability.template.md. Replay a scenario with `WASCHED_TEST_SEED=<seed>`."
    )
    return template.replace(PLACEHOLDER, f"{made}\n\n{table(summaries)}")


def commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return found or "unknown"


def main(argv: list[str]) -> int:
    """`FIGURES.json OUT.md`: a new run's figures; `--render OUT.md`: the kept figures again
    (after a change of the template's prose)."""
    if len(argv) != 2:
        print("usage: python -m tests.faults.reliability FIGURES.json|--render OUT.md")
        return 2
    if argv[0] != "--render":
        data = json.loads(Path(argv[0]).read_text())  # written by tests/faults/figures.py
        data["run"]["commit"] = commit()
        FIGURES.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    run, summaries = load(FIGURES)
    Path(argv[1]).write_text(render(TEMPLATE.read_text(), run, summaries))
    print(f"wrote {argv[1]} and {FIGURES.relative_to(ROOT)} ({len(summaries)} scenarios)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
