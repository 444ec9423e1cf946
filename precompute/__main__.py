"""Command line: ``python -m precompute {generate,run,demo,train-mae,export,import,info}``.

The same sub-commands are part of the ``phenomix`` command (:mod:`phenomix.cli`), which adds them
through :func:`add_subcommands` and runs them through :func:`run_command`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from phenomix.settings import default_store, resolve_screen
from precompute.artifacts import ArtifactError
from precompute.contract import ContractError
from precompute.embed import registry as embedder_registry
from precompute.readers.cli import add_export_arguments, add_import_arguments, run_export, run_import
from precompute.train_cli import add_train_arguments, train_mae_command


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screen", default="demo", help="'demo' or a screen folder")
    p.add_argument("--store", type=Path, default=None, help="artifact store (default var/store/<screen>)")
    p.add_argument("--embedder", action="append", choices=embedder_registry.cli_choices(),
                   help="embedders to run (repeatable; default random, pixelstats, mae). "
                        + embedder_registry.cli_help())
    p.add_argument("--align", action="append", choices=["centerscale", "tvn", "spherize"],
                   help="alignment methods (repeatable; default centerscale, tvn)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="MAE checkpoint folder (default: the shipped one); for openphenom a folder laid out as "
                        "Recursion distributes OpenPhenom (config.json + model.safetensors)")
    p.add_argument("--block", type=_block_arg, default=None, metavar="N|last|best",
                   help="MAE encoder block to embed from (1-based); 'best' scores every block on the screen's "
                        "annotations and keeps the best (default: the checkpoint's embedding.json, else last)")
    p.add_argument("--channelwise", action=argparse.BooleanOptionalAction, default=None,
                   help="MAE: one mean per channel, concatenated (C x D) instead of one mean over all tokens")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--tvn-fallback", default="error", choices=["error", "pooled"],
                   help="a batch with too few controls: stop (error) or use pooled controls (logged)")
    p.add_argument("--tvn-components", type=_tvn_components_arg, default="auto", metavar="auto|N|none",
                   help="TVN runs on a PCA of this width as in EFAAR's map recipe: 'auto' (default) keeps as "
                        "many components as the smallest batch's controls can whiten (controls // 3, at most "
                        "128), N a fixed width, 'none' EFAAR's tvn_on_controls on the full embedding")
    p.add_argument("--force", action="append", default=[], help="redo STAGE and everything after it (or 'all')")
    p.add_argument("--run-name", default="default")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--executor", type=_executor_arg, default="local", metavar="SPEC",
                   help="where the embed stage's per-plate work runs: 'local' (this process, the default), "
                        "'dask://HOST:PORT' (an existing Dask scheduler, e.g. on a SLURM or Kubernetes cluster; "
                        "every worker must see the screen and checkpoint at the same paths) or 'dask-local:N' "
                        "(N worker processes on this machine). Stage keys and artifacts do not depend on it; "
                        "see docs/cluster.md")
    p.add_argument("--verify-images", default="header", choices=["header", "full"],
                   help="before any stage runs, check every image: 'header' (size and bit depth from each "
                        "file's header, and PNG truncation; fast) or 'full' (decode every image; slow)")


def _executor_arg(value: str) -> str:
    """Check --executor while parsing arguments, so a typo stops the run before anything is written."""
    from precompute.executors import parse_executor

    try:
        return str(parse_executor(value))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("executor ")) from None  # argparse names the option


def _block_arg(value: str) -> str:
    if value in ("last", "best") or (value.isdigit() and int(value) >= 1):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: use a block number (1 = first), 'last' or 'best'")


def _tvn_components_arg(value: str) -> int | str:
    if value in ("auto", "none"):
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r}: use 'auto', 'none' or a positive number of components")


def cmd_run(a: argparse.Namespace) -> int:
    from precompute.pipeline import RunConfig, run_pipeline

    screen = resolve_screen(a.screen)
    store = a.store or default_store(a.screen)
    cfg = RunConfig(device=a.device, tvn_fallback=a.tvn_fallback, tvn_components=a.tvn_components,
                    checkpoint=str(a.checkpoint) if a.checkpoint else None)
    if a.block is not None:
        cfg.block = a.block
    if a.channelwise is not None:
        cfg.channelwise = a.channelwise
    if a.embedder:
        cfg.embedders = tuple(a.embedder)
        mae = [e for e in a.embedder if embedder_registry.is_mae(e)]
        cfg.primary_embedder = mae[-1] if mae else a.embedder[-1]
    if a.align:
        cfg.align_methods = tuple(a.align)
        cfg.primary_align = "tvn" if "tvn" in a.align else a.align[-1]
    run = run_pipeline(screen, store, cfg, run_name=a.run_name, force=set(a.force), progress=not a.quiet,
                       verify_images=a.verify_images, executor=a.executor)
    print_summary(run, store)
    return 0


def print_summary(run: dict, store: Path) -> None:
    print(f"\nPhenomix precompute: screen {run['screen']['name']} -> {store}  ({run['seconds']} s)")
    width = max([len("stage")] + [len(r["stage"]) for r in run["reports"]]) + 2  # stage names vary: one column fits all
    print(f"{'stage':<{width}}{'name':<26}{'status':<10}{'seconds':>9}  rows")
    for r in run["reports"]:
        rows = ", ".join(f"{k}={v}" for k, v in list(r["rows"].items())[:3])
        status = "cached" if r["skipped"] else "computed"
        print(f"{r['stage']:<{width}}{r['name']:<26}{status:<10}{r['seconds']:>9.1f}  {rows}")
    ev = run.get("summary")
    if ev:
        print(ev)


def cmd_demo(a: argparse.Namespace) -> int:
    """Build the built-in screen once (cached), then run the pipeline (cached stages skipped)."""
    screen = resolve_screen(a.screen)
    if a.screen == "real":
        from precompute.real_screen import build_real_screen  # issue: real screens

        if not (screen / "screen.json").exists():
            build_real_screen(screen)
    elif not (screen / "screen.json").exists():
        from precompute.synth import SynthConfig, generate_screen

        t0 = time.time()
        preset = "demo" if a.screen == "demo" else a.screen
        print(f"Generating the {preset} screen into {screen} (once; later runs reuse it) ...", flush=True)
        generate_screen(SynthConfig.preset(preset), screen, progress=not a.quiet)
        print(f"generated in {time.time() - t0:.1f} s", flush=True)
    else:
        print(f"Screen {screen} exists: reusing it.", flush=True)
    return cmd_run(a)


def cmd_info(a: argparse.Namespace) -> int:
    from precompute.artifacts import ArtifactStore

    store = ArtifactStore(a.store or default_store(a.screen), create=False)
    for name in store.run_names():
        run = store.get_run(name)
        print(f"run {name}: screen {run['screen']['name']}, finished {run.get('finished')}")
        for stage, node in run["stages"].items():
            print(f"  {stage}: {node}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m precompute", description=__doc__)
    add_subcommands(p.add_subparsers(dest="command", required=True))
    return p


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """The pipeline's sub-commands (generate, run, demo, train-mae, export, import, info), each with
    its arguments and ``func``, added to ``sub``: shared by ``python -m precompute`` and ``phenomix``."""
    g = sub.add_parser("generate", help="generate a synthetic screen (images or embeddings only)")
    try:
        from precompute.synth.cli import add_generate_arguments, run_generate
    except ImportError as err:  # keep `run` usable on a machine where the generator cannot load
        reason = str(err)
        g.set_defaults(func=lambda _a: print(f"error: the generator cannot be loaded: {reason}", file=sys.stderr) or 2)
    else:
        add_generate_arguments(g)
        g.set_defaults(func=run_generate)

    r = sub.add_parser("run", help="run the pipeline on a screen into an artifact store")
    _run_args(r)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="build the built-in screen if needed, then run the pipeline")
    _run_args(d)
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train-mae", help="train the channel-agnostic MAE on a screen's tiles")
    add_train_arguments(t)
    t.set_defaults(func=train_mae_command)

    x = sub.add_parser("export", help="export embeddings (.h5ad) or neighbour/similarity tables")
    add_export_arguments(x)
    x.set_defaults(func=run_export)
    m = sub.add_parser("import", help="another tool's files -> a screen folder (kinds: "
                       "precompute/readers/kinds/; without a kind, lists them)")
    add_import_arguments(m)
    m.set_defaults(func=run_import)

    i = sub.add_parser("info", help="list the runs and stage keys of a store")
    i.add_argument("--screen", default="demo")
    i.add_argument("--store", type=Path, default=None)
    i.set_defaults(func=cmd_info)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed sub-command. Exit 0 on success; on any failure one line ``error: ...`` on
    stderr and a non-zero exit.

    2: bad input or store (the message names the file, line or value); 1: an unexpected error
    (the line says where; PHENOMIX_DEBUG=1 prints the traceback); 130: interrupted.
    """
    try:
        return int(args.func(args) or 0)
    except (ContractError, ArtifactError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; completed stages are kept, rerun to continue", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as err:  # disk full, permissions: the user's to fix, not a bug
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: say where in one line rather than a wall of traceback
        if os.environ.get("PHENOMIX_DEBUG") == "1":
            raise
        print(f"error: unexpected {type(err).__name__} at {_where(err)}: {err} "
              "(set PHENOMIX_DEBUG=1 for the traceback; completed stages are kept)", file=sys.stderr)
        return 1


def _where(err: BaseException) -> str:
    """file:line of the innermost frame of an exception, for the one-line error."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


if __name__ == "__main__":
    sys.exit(main())
