"""The layers of the code base hold, and a deliberate violation is caught (issue #13).

`.importlinter` states the contracts (precompute knows no Dash, figures are pure, pages never
reach the pipeline, the command line on top and settings at the bottom, no cycles between
siblings); import-linter checks them. On top of that, no module may sit in an import cycle with
another, and function-level imports count: grimp reads every import statement in a file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("phenomix", "precompute", "phenomix_dash")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the packages under ``root`` with ``root``'s .importlinter."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def import_cycles(root: Path) -> list[list[str]]:
    """Groups of modules under ``root`` that import each other, directly or around a loop. Run in a
    fresh interpreter: grimp finds packages through the import system, which in this process
    already holds the checkout's."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, __file__], cwd=root, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout)


def _cycles_here() -> list[list[str]]:
    """Tarjan's strongly connected components over grimp's graph of the importable packages
    (grimp includes imports inside functions)."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def copy_packages(dest: Path) -> Path:
    """The three packages and the contracts, copied (sources only) for a deliberate violation."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / ".importlinter", dest / ".importlinter")
    return dest


def test_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_is_in_an_import_cycle() -> None:
    assert import_cycles(ROOT) == []


@pytest.mark.parametrize(
    ("path", "source", "contract"),
    [
        ("precompute/_violation.py", "import phenomix_dash\n", "precompute never imports the dashboard"),
        ("precompute/_violation.py", "def f():\n    import dash\n", "precompute never imports the dashboard"),
        ("phenomix_dash/figures/_violation.py", "from phenomix_dash.data import get_data\n", "Figures are pure"),
        ("phenomix_dash/pages/_violation.py", "import precompute.pipeline\n", "Pages read artifacts"),
        ("precompute/_violation.py", "def f():\n    import phenomix.cli\n", "settings sit under everything"),
    ],
)
def test_a_deliberate_violation_fails(tmp_path: Path, path: str, source: str, contract: str) -> None:
    root = copy_packages(tmp_path)
    (root / path).write_text(source)
    result = lint_imports(root)
    assert result.returncode != 0
    assert contract in " ".join(result.stdout.split()), result.stdout


def test_a_cycle_through_function_level_imports_is_found(tmp_path: Path) -> None:
    root = copy_packages(tmp_path)
    (root / "precompute" / "_cycle_a.py").write_text("def f():\n    from precompute import _cycle_b\n")
    (root / "precompute" / "_cycle_b.py").write_text("def g():\n    from precompute import _cycle_a\n")
    assert ["precompute._cycle_a", "precompute._cycle_b"] in import_cycles(root)
    assert lint_imports(root).returncode != 0  # the sibling-cycle contract sees it too


if __name__ == "__main__":
    print(json.dumps(_cycles_here()))
