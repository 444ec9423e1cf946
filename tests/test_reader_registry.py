"""Import kinds are one file each in precompute/readers/kinds/: the command line lists, offers and
runs whatever is there, so a new reader is a new file (issue #13)."""

from __future__ import annotations

import argparse
import textwrap

import pytest

import precompute.readers.kinds as kinds_pkg
from precompute.__main__ import build_parser, main
from precompute.readers.kinds import ImportKind, registered_kinds
from precompute.screen import load_screen

THROWAWAY = '''
"""``import throwaway``: a screen of four wells read from a tiny text file (a test's reader)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.readers.kinds import ImportKind
from precompute.screen import write_rxrx_screen


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", default="b1", help="batch of every well")


def run(args: argparse.Namespace) -> Path:
    genes = Path(args.inputs[0]).read_text().split()
    wells = pd.DataFrame({
        "well_id": [f"p1_{w}" for w in ("A01", "A02", "A03", "A04")], "batch": args.batch, "plate": "p1",
        "well": ["A01", "A02", "A03", "A04"], "perturbation_type": ["negative_control"] + ["crispr"] * 3,
        "perturbation": ["EMPTY"] + genes, "gene": [None] + genes, "guide": None, "compound": None,
        "concentration_um": np.nan})
    return write_rxrx_screen(args.out, wells, None, channels=["DNA"], n_sites=1, name=args.name,
                             arrays={"well_features": np.eye(4, dtype=np.float32)})


KIND = ImportKind(name="throwaway", help="four wells from a text file of three genes", inputs_help="the text file",
                  add_arguments=add_arguments, run=run)
'''


def import_choices(parser: argparse.ArgumentParser) -> list[str]:
    imp = next(a for a in parser._subparsers._group_actions if "import" in a.choices).choices["import"]
    return list(imp._subparsers._group_actions[0].choices)


def test_the_three_kinds_are_registered_with_help():
    kinds = registered_kinds()
    assert list(kinds) == ["h5ad", "profiles", "rxrx"]
    assert all(isinstance(k, ImportKind) and k.help and k.inputs_help for k in kinds.values())
    assert kinds["profiles"].several_inputs and not kinds["rxrx"].several_inputs
    assert import_choices(build_parser()) == ["h5ad", "profiles", "rxrx"]


def test_import_without_a_kind_lists_the_kinds(capsys):
    assert main(["import"]) == 2
    err = capsys.readouterr().err
    assert "name an import kind, one of h5ad, profiles, rxrx" in err
    for name, kind in registered_kinds().items():
        assert name in err and kind.help.split()[0] in err
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--help"])
    assert exit_.value.code == 0 and "profiles" in capsys.readouterr().out


def test_a_new_reader_is_one_new_file(tmp_path, monkeypatch, capsys):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "throwaway.py").write_text(textwrap.dedent(THROWAWAY))
    (plugins / "_helper.py").write_text("raise AssertionError('modules starting with _ are not kinds')\n")
    monkeypatch.setattr(kinds_pkg, "__path__", [*kinds_pkg.__path__, str(plugins)])
    assert list(registered_kinds()) == ["h5ad", "profiles", "rxrx", "throwaway"]
    assert "throwaway" in import_choices(build_parser())

    genes = tmp_path / "genes.txt"
    genes.write_text("TP53 MYC KRAS")
    out = tmp_path / "screen"
    assert main(["import", "throwaway", str(genes), "--out", str(out), "--batch", "b7"]) == 0
    assert f"wrote screen {out}" in capsys.readouterr().out
    screen = load_screen(out)
    assert screen.name == "screen" and set(screen.wells["batch"]) == {"b7"}
    assert list(screen.wells["gene"].dropna()) == ["TP53", "MYC", "KRAS"]
    with pytest.raises(SystemExit):  # its arguments are its own: another kind does not take them
        main(["import", "h5ad", str(genes), "--out", str(out), "--batch", "b7"])


def test_a_broken_or_duplicate_kind_file_is_named(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    monkeypatch.setattr(kinds_pkg, "__path__", [*kinds_pkg.__path__, str(plugins)])
    (plugins / "nokind.py").write_text("X = 1\n")
    with pytest.raises(TypeError, match=r"precompute\.readers\.kinds\.nokind: .*KIND = ImportKind"):
        registered_kinds()
    (plugins / "nokind.py").unlink()
    (plugins / "again.py").write_text("from precompute.readers.kinds.rxrx import KIND\n")
    with pytest.raises(ValueError, match=r"'rxrx' is defined twice"):
        registered_kinds()


def test_reader_errors_stay_one_clear_line(tmp_path, capsys):
    csv = tmp_path / "meta.csv"
    csv.write_text("well_id\nx\n")
    assert main(["import", "rxrx", str(csv), "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == "error: import rxrx: give either --embeddings or --images"
    assert main(["import", "profiles", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "s")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
