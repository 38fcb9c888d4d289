"""docs/reliability.md is the rendering of its template with a real run's asserted figures."""

from __future__ import annotations

import pytest

from tests.faults import reliability
from tests.faults.summary import Figure, Summary

RUN = {"date": "2026-12-01", "commit": "abc1234", "machine": "2 cores"}


def summary(name: str, *figures: Figure) -> Summary:
    return Summary(scenario=name, seed=7, figures=list(figures))


def test_every_figure_is_rendered_with_its_bound() -> None:
    text = reliability.render(
        "# t\n<!-- figures -->\nend\n",
        RUN,
        [
            summary("2 b", Figure("messages sent", 250, "==", 250)),
            summary("1 a", Figure("interrupted sends", 3, "<=", 8)),
        ],
    )
    assert "| 1 a | interrupted sends 3 (asserted <= 8) | 7 |" in text
    assert "| 2 b | messages sent 250 | 7 |" in text
    assert text.index("| 1 a") < text.index("| 2 b")
    assert text.startswith("# t\n") and text.endswith("end\n") and "abc1234" in text


def test_a_failing_runs_figures_are_refused() -> None:
    broken = summary("1 a", Figure("lost", 1, "==", 0))
    with pytest.raises(ValueError, match="failing run"):
        reliability.render("<!-- figures -->", RUN, [broken])


def test_the_template_has_one_place_for_the_figures() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        reliability.render("no place", RUN, [])


def test_the_committed_page_is_the_rendering_of_the_committed_figures() -> None:
    """Nobody edited a figure by hand, and every figure on the page was asserted and held."""
    run, summaries = reliability.load(reliability.FIGURES)
    page = (reliability.ROOT / "docs" / "reliability.md").read_text()
    assert page == reliability.render(reliability.TEMPLATE.read_text(), run, summaries), (
        "docs/reliability.md differs from its template and figures: run `make reliability`"
    )
    assert summaries and all(s.figures for s in summaries)
