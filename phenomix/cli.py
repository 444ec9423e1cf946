"""The ``phenomix`` command: the pipeline, the dashboard and the benchmarks behind one name.

    phenomix demo                      # build the demo screen once, run the pipeline (cached stages skipped)
    phenomix serve --screen demo       # the dashboard on http://127.0.0.1:8050
    phenomix generate | run | import | export | train-mae | info ...   # as python -m precompute ...
    phenomix bench [NAME [ARGS...]]    # list the benchmark scripts, or run one (needs a checkout)

The pipeline's sub-commands and their arguments are precompute.__main__'s (added here through
``add_subcommands``), serving is :mod:`phenomix.serve`'s: nothing is defined twice.
"""

from __future__ import annotations

import argparse
import ast
import logging
import subprocess
import sys
from pathlib import Path

from phenomix.serve import add_serve_arguments, serve, settings_from_args
from phenomix.settings import Settings, checkout_dir
from precompute.__main__ import add_subcommands, run_command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="phenomix", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_subcommands(sub)

    base = Settings.from_env()
    s = sub.add_parser("serve", help="serve the dashboard (development server; for a team: gunicorn app:server)")
    add_serve_arguments(s, base)
    s.set_defaults(func=lambda a: serve(settings_from_args(a, base)))

    b = sub.add_parser("bench", help="list the benchmark scripts of a checkout, or run one by name")
    b.add_argument("name", nargs="?", help="a script of benchmarks/, without .py (none: list them)")
    b.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed on to the script")
    b.add_argument("--checkout", type=Path, default=None,
                   help="the repository checkout holding benchmarks/ (default: the one this package runs from, "
                        "else the current folder)")
    b.set_defaults(func=cmd_bench)
    return p


def benchmark_scripts(folder: Path) -> dict[str, str]:
    """name -> first line of its docstring, for every script of ``folder`` (``_*.py`` are helpers)."""
    out = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        out[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def _find_checkout(given: Path | None) -> Path | None:
    for candidate in (given, checkout_dir(), Path.cwd()):
        if candidate is not None and (candidate / "benchmarks").is_dir():
            return candidate
    return None


def cmd_bench(a: argparse.Namespace) -> int:
    root = _find_checkout(a.checkout)
    if root is None:
        where = a.checkout or Path.cwd()
        print(f"error: no benchmarks/ folder at {where}: the benchmarks are scripts of a checkout of the "
              "Phenomix repository, not part of the installed package; run `phenomix bench` from a checkout "
              "or pass --checkout DIR", file=sys.stderr)
        return 2
    scripts = benchmark_scripts(root / "benchmarks")
    if a.name is None:
        print(f"benchmarks in {root / 'benchmarks'} (run one: phenomix bench NAME [ARGS]; results go to "
              "benchmarks/results/; `make bench` runs the set the README reports):")
        for name, line in scripts.items():
            print(f"  {name:<28} {line}")
        return 0
    if a.name not in scripts:
        print(f"error: no benchmark {a.name!r} in {root / 'benchmarks'}; choose one of {', '.join(scripts)}",
              file=sys.stderr)
        return 2
    # A script of its own, from the checkout's root, as `make bench` runs it.
    return subprocess.call([sys.executable, str(root / "benchmarks" / f"{a.name}.py"), *a.args], cwd=root)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fmt = "%(asctime)s %(name)s %(message)s" if args.command == "serve" else "%(asctime)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, datefmt="%H:%M:%S")
    if args.command in ("serve", "bench"):
        return int(args.func(args) or 0)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
