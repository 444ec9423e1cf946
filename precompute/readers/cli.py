"""CLI glue for ``python -m precompute export`` and ``python -m precompute import`` (wired by __main__).

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
from pathlib import Path

from precompute.readers.common import ReaderError

EXPORT_WHAT = ("wells", "perturbations", "neighbours", "similarity")
IMPORT_KINDS = ("profiles", "rxrx", "h5ad")


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

    store = args.store
    if store is None:
        from precompute.__main__ import default_store_for

        store = default_store_for(args.screen)
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
    p.add_argument("kind", choices=IMPORT_KINDS, help="profiles (pycytominer/JUMP/LINCS), rxrx (RxRx3 metadata), h5ad")
    p.add_argument("inputs", nargs="+", type=Path, help="profile files (several plates allowed), the RxRx metadata CSV, or the .h5ad")
    p.add_argument("--out", type=Path, required=True, help="screen folder to write (replaced atomically)")
    p.add_argument("--name", default=None, help="screen name (default: the folder name)")
    p.add_argument("--mapping", default=None,
                   help="mapping overrides: a JSON file or JSON text (profiles/h5ad: plate, well, batch, controls, ...; "
                        "rxrx: type_map, control_map); see docs/real-data.md")
    p.add_argument("--join", choices=["intersection", "same"], default="intersection",
                   help="profiles from several files: keep common features, or require identical ones")
    p.add_argument("--embeddings", type=Path, default=None, help="rxrx: per-well embedding table (well_id + feature_0..)")
    p.add_argument("--images", type=Path, default=None, help="rxrx: image folder ({experiment}/Plate{n}/{well}_s{s}_w{c}.png)")
    p.add_argument("--sites", type=int, default=1, help="rxrx images: sites per well")
    p.add_argument("--on-missing", choices=["error", "drop"], default="error",
                   help="rxrx embeddings: wells without an embedding stop the import or are left out (reported)")


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
    mapping = _mapping_arg(args.mapping)
    name = args.name or args.out.name
    if args.kind == "profiles":
        from precompute.readers.profiles import profiles_to_screen

        root, prof = profiles_to_screen(args.inputs, args.out, name=name, mapping=mapping, join=args.join)
        for r in prof.all_reports():
            print(r.to_text())
        print(f"wrote screen {root}: {len(prof.wells)} wells x {len(prof.feature_names)} features "
              f"(run it with: python -m precompute run --screen {root})")
        return 0
    if len(args.inputs) != 1:
        raise ReaderError(f"import {args.kind}: give exactly one input file, got {len(args.inputs)}")
    if args.kind == "rxrx":
        from precompute.readers import rxrx

        if (args.embeddings is None) == (args.images is None):
            raise ReaderError("import rxrx: give either --embeddings or --images")
        if args.embeddings is not None:
            root = rxrx.rxrx_embedding_screen(args.inputs[0], args.embeddings, args.out, name=name,
                                              mapping=mapping, on_missing=args.on_missing)
        else:
            root = rxrx.rxrx_image_screen(args.inputs[0], args.images, args.out, n_sites=args.sites,
                                          name=name, mapping=mapping)
    else:
        from precompute.readers.anndata_io import import_anndata

        root = import_anndata(args.inputs[0], args.out, name=name, mapping=mapping)
    print(f"wrote screen {root} (run it with: python -m precompute run --screen {root})")
    return 0
