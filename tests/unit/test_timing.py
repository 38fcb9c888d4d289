"""The README's `make test` figure is written by tests/timing.py, between its markers only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import timing


def test_the_figure_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{timing.BEGIN}\nold figure\n{timing.END}\nrest\n")
    runs = [timing.Run(251.4, 1.2, 0), timing.Run(188.0, 0.4, 0)]
    timing.write_readme(readme, timing.block(runs, "abc1234"))
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n")
    assert "old figure" not in text
    assert "4 min 11 s, 3 min 08 s (2 runs;" in text and "1.2, 0.4" in text and "abc1234" in text


def test_a_readme_without_markers_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        timing.write_readme(readme, "x")
    assert readme.read_text() == "no markers\n"


def test_the_readme_has_the_markers() -> None:
    text = (timing.ROOT / "README.md").read_text()
    assert text.count(timing.BEGIN) == 1 and text.count(timing.END) == 1
