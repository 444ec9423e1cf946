"""``import h5ad``: an AnnData file of wells (X = features or an embedding, obs = metadata) -> a
screen. See :func:`precompute.readers.anndata_io.import_anndata`."""

from __future__ import annotations

import argparse
from pathlib import Path

from precompute.readers.anndata_io import import_anndata
from precompute.readers.kinds import ImportKind


def run(args: argparse.Namespace) -> Path:
    return import_anndata(args.inputs[0], args.out, name=args.name, mapping=args.mapping)


KIND = ImportKind(
    name="h5ad",
    help="an AnnData .h5ad of wells (X = features or embedding, obs = well metadata) -> a screen",
    inputs_help="the .h5ad file",
    run=run,
)
