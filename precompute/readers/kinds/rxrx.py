"""``import rxrx``: RxRx3(-core) metadata with either a published embedding table or an image
folder -> a screen. See :mod:`precompute.readers.rxrx`."""

from __future__ import annotations

import argparse
from pathlib import Path

from precompute.readers import rxrx
from precompute.readers.common import ReaderError
from precompute.readers.kinds import ImportKind


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embeddings", type=Path, default=None, help="per-well embedding table (well_id + feature_0..)")
    p.add_argument("--images", type=Path, default=None, help="image folder ({experiment}/Plate{n}/{well}_s{s}_w{c}.png)")
    p.add_argument("--sites", type=int, default=1, help="with --images: sites per well")
    p.add_argument("--on-missing", choices=["error", "drop"], default="error",
                   help="with --embeddings: wells without an embedding stop the import or are left out (reported)")


def run(args: argparse.Namespace) -> Path:
    if (args.embeddings is None) == (args.images is None):
        raise ReaderError("import rxrx: give either --embeddings or --images")
    if args.embeddings is not None:
        return rxrx.rxrx_embedding_screen(args.inputs[0], args.embeddings, args.out, name=args.name,
                                          mapping=args.mapping, on_missing=args.on_missing)
    return rxrx.rxrx_image_screen(args.inputs[0], args.images, args.out, n_sites=args.sites,
                                  name=args.name, mapping=args.mapping)


KIND = ImportKind(
    name="rxrx",
    help="RxRx3(-core) metadata CSV + an embedding table (--embeddings) or an image folder (--images) -> a screen",
    inputs_help="the RxRx metadata CSV",
    add_arguments=add_arguments,
    run=run,
)
