"""The `phenomix` command in-process (the installed command is tests/test_package.py's, slow)."""

from __future__ import annotations

from pathlib import Path

import precompute.__main__ as precompute_main
from phenomix import cli
from phenomix.settings import default_store


def subcommands(parser) -> dict:
    return next(a for a in parser._subparsers._group_actions).choices


def test_every_command_is_there_and_the_pipeline_ones_are_precompute_s():
    ours, theirs = subcommands(cli.build_parser()), subcommands(precompute_main.build_parser())
    assert set(ours) == {"generate", "run", "demo", "serve", "import", "export", "train-mae", "bench", "info"}
    for name in theirs:  # defined once: the same options, in the same order
        assert [a.option_strings for a in ours[name]._actions] == [a.option_strings for a in theirs[name]._actions]


def test_serve_arguments_become_settings(monkeypatch):
    monkeypatch.delenv("PHENOMIX_STORE", raising=False)
    args = cli.build_parser().parse_args(["serve", "--screen", "tiny", "--port", "8123"])
    from phenomix.serve import settings_from_args

    s = settings_from_args(args, cli.Settings.from_env())
    assert s.store == default_store("tiny") and s.port == 8123 and s.host == "127.0.0.1" and not s.debug


def test_bench_lists_and_names_bad_scripts(capsys, tmp_path, monkeypatch):
    assert cli.main(["bench"]) == 0
    out = capsys.readouterr().out
    assert "bench_align" in out and "_meta" not in out
    assert cli.main(["bench", "no_such_bench"]) == 2
    assert "no benchmark 'no_such_bench'" in capsys.readouterr().err
    # Installed outside a checkout: a clear message, not a crash.
    monkeypatch.setattr(cli, "checkout_dir", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench"]) == 2
    assert "not part of the installed package" in capsys.readouterr().err


def test_pipeline_errors_stay_one_line(capsys, tmp_path):
    assert cli.main(["info", "--store", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(Path(tmp_path / "nothing")) in err
