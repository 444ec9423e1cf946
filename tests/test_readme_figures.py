"""The README's figures are the results files' figures, and every results file says how it was made.

The README's tables sit between ``<!-- results:NAME -->`` markers and are rendered by
scripts/render_readme.py from benchmarks/results/*.json; a hand edit of a figure, or a results file
re-run without `make readme`, fails here. Timings themselves are never asserted (benchmarks/).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RUN_RECORD = ("command", "repeats", "commit", "threads", "load_before", "load_after", "versions")


def _renderer():
    spec = importlib.util.spec_from_file_location("render_readme", REPO / "scripts" / "render_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_figures_equal_what_the_results_files_render():
    render = _renderer()
    readme = (REPO / "README.md").read_text()
    blocks = render.BLOCK.findall(readme)
    assert {b[1] for b in blocks} >= {"scorecard", "real-data", "performance", "callbacks"}, \
        "README lost a rendered block marker"
    assert render.render(readme) == readme, "README figures differ from benchmarks/results: run `make readme`"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_each_results_file_records_how_it_was_made(path: Path):
    meta = json.loads(path.read_text()).get("meta")
    assert meta, f"{path.name}: no run record (benchmarks/_meta.py save_result)"
    missing = [k for k in RUN_RECORD if meta.get(k) in (None, "", [])]
    assert not missing, f"{path.name}: run record lacks {missing}"
    assert len(meta["commit"]) == 40 and meta["threads"]["env"].get("OMP_NUM_THREADS") is not None, path.name
    assert len(meta["load_before"]) == 3 and len(meta["load_after"]) == 3, path.name


def test_a_changed_results_figure_changes_the_readme(tmp_path: Path):
    """The check is not vacuous: a different figure in a results file renders a different README."""
    render = _renderer()
    folder = tmp_path / "results"
    shutil.copytree(RESULTS, folder)
    card = json.loads((folder / "demo_scorecard.json").read_text())
    row = next(r for r in card["recall"] if r["space"] == card["primary_align"])
    row["recall"] = 0.987654
    (folder / "demo_scorecard.json").write_text(json.dumps(card))
    readme = (REPO / "README.md").read_text()
    changed = render.render(readme, folder)
    assert changed != readme and "0.988" in changed and "0.988" not in readme


def test_a_missing_results_file_renders_as_not_measured(tmp_path: Path):
    render = _renderer()
    folder = tmp_path / "results"
    folder.mkdir()
    out = render.render((REPO / "README.md").read_text(), folder)
    assert "Demo scorecard: not measured" in out and "| random |" not in out
    assert "Real-data report: not measured" in out and "precompute after embedding at a million wells | | not measured" in out
