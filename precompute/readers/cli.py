"""CLI glue for ``python -m precompute export`` and ``python -m precompute import`` (wired by __main__).

The import kinds are modules of :mod:`precompute.readers.kinds` (one file each, found there);
``import`` without a kind lists them.

    python -m precompute import profiles plate1.csv.gz plate2.parquet --out var/screens/mine [--mapping m.json]
    python -m precompute import rxrx metadata_rxrx3_core.csv --embeddings OpenPhenom.parquet --out var/screens/rx
    python -m precompute import rxrx metadata.csv --images /data/rxrx3/images --sites 1 --out var/screens/rx
    python -m precompute import h5ad wells.h5ad --out var/screens/from_h5ad
    python -m precompute export --screen real --what wells --out real_wells.h5ad
    python -m precompute export --screen real --what neighbours --out real_neighbours.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phenomix.settings import default_store
from precompute.readers.common import ReaderError
from precompute.readers.kinds import ImportKind, registered_kinds

EXPORT_WHAT = ("wells", "perturbations", "neighbours", "similarity")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screen", default="demo", help="'demo', 'real' or a screen folder (picks the default store)")
    p.add_argument("--store", type=Path, default=None, help="artifact store (default var/store/<screen>)")
    p.add_argument("--run-name", default="default")
    p.add_argument("--embedder", default=None, help="embedder to export (default: the run's primary one)")
    p.add_argument("--what", choices=EXPORT_WHAT, default="wells",
                   help="wells/perturbations -> .h5ad; neighbours/similarity -> .csv/.parquet")
    p.add_argument("--similarity", default="compound_compound",
                   choices=["gene_gene", "gene_compound", "compound_compound"], help="matrix for --what similarity")
    p.add_argument("--min-abs", type=float, default=0.0, help="similarity: keep pairs with |cosine| >= this")
    p.add_argument("--out", type=Path, required=True, help="output file (.h5ad, .csv, .csv.gz or .parquet)")


def run_export(args: argparse.Namespace) -> int:
    from precompute.readers import anndata_io

    store = args.store or default_store(args.screen)
    if args.what in ("wells", "perturbations"):
        if args.out.suffix != ".h5ad":
            raise ReaderError(f"{args.out}: --what {args.what} writes AnnData; name the file *.h5ad")
        out = anndata_io.export_anndata(store, args.out, run=args.run_name, embedder=args.embedder, level=args.what)
    elif args.what == "neighbours":
        out = anndata_io.export_neighbours(store, args.out, run=args.run_name, embedder=args.embedder)
    else:
        out = anndata_io.export_similarity(store, args.out, kind=args.similarity, run=args.run_name,
                                           embedder=args.embedder, min_abs=args.min_abs)
    print(f"wrote {out}")
    return 0


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    """One sub-command per registered kind, each with the shared arguments and its own."""
    p.description = "Read a screen from another tool's files (python -m precompute import KIND --help for one kind)."
    sub = p.add_subparsers(dest="kind", metavar="KIND", title="kinds")
    for kind in registered_kinds().values():
        k = sub.add_parser(kind.name, help=kind.help, description=kind.help)
        k.add_argument("inputs", nargs="+" if kind.several_inputs else 1, type=Path, metavar="INPUT",
                       help=kind.inputs_help)
        k.add_argument("--out", type=Path, required=True, help="screen folder to write (replaced atomically)")
        k.add_argument("--name", default=None, help="screen name (default: the folder name)")
        k.add_argument("--mapping", default=None,
                       help="mapping overrides: a JSON file or JSON text (profiles/h5ad: plate, well, batch, "
                            "controls, ...; rxrx: type_map, control_map); see docs/real-data.md")
        kind.add_arguments(k)
        k.set_defaults(import_kind=kind)
    p.set_defaults(import_help=p.format_help)


def _mapping_arg(text: str | None):
    if text is None:
        return None
    if Path(text).is_file():
        try:
            return json.loads(Path(text).read_text())
        except json.JSONDecodeError as err:
            raise ReaderError(f"{text}: mapping file is not valid JSON ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ReaderError(f"--mapping: neither a file nor valid JSON ({err})") from None


def run_import(args: argparse.Namespace) -> int:
    """Run the chosen kind; without one, print the kinds and return 2."""
    kind: ImportKind | None = getattr(args, "import_kind", None)
    if kind is None:
        print(f"error: name an import kind, one of {', '.join(registered_kinds())}\n", file=sys.stderr)
        print(args.import_help(), file=sys.stderr)
        return 2
    args.mapping = _mapping_arg(args.mapping)
    args.name = args.name or args.out.name
    root = kind.run(args)
    print(f"wrote screen {root} (run it with: python -m precompute run --screen {root})")
    return 0
