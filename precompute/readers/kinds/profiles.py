"""``import profiles``: well-level profiles (pycytominer / JUMP / LINCS; CSV, CSV.gz, Parquet) -> a
screen whose embedder is ``features``. See :mod:`precompute.readers.profiles`."""

from __future__ import annotations

import argparse
from pathlib import Path

from precompute.readers.kinds import ImportKind
from precompute.readers.profiles import profiles_to_screen


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--join", choices=["intersection", "same"], default="intersection",
                   help="profiles from several files: keep common features, or require identical ones")


def run(args: argparse.Namespace) -> Path:
    root, prof = profiles_to_screen(args.inputs, args.out, name=args.name, mapping=args.mapping, join=args.join)
    for report in prof.all_reports():
        print(report.to_text())
    print(f"{len(prof.wells)} wells x {len(prof.feature_names)} features")
    return root


KIND = ImportKind(
    name="profiles",
    help="well-level profiles (pycytominer / JUMP / LINCS: CSV, CSV.gz, Parquet) -> a screen embedded with 'features'",
    inputs_help="profile files (several plates allowed)",
    several_inputs=True,
    add_arguments=add_arguments,
    run=run,
)
