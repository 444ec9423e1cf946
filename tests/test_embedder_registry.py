"""The embedder registry (precompute.embed.registry): one module per embedder, and everything that
lists embedders (the CLI's --embedder choices, figure and benchmark labels, the embed stage's
options) reads it. A throwaway embedder written as one file is picked up everywhere."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from precompute.embed import embed_well, get_embedder, registry
from precompute.embed.mae_options import DEFAULT_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]


def _old_embedder_options(name: str, screen: Any, config: Any) -> tuple[dict, dict]:
    """precompute/stages.py's embedder_options before the registry (commit f3d7d99), verbatim but for
    the imports: the stage-key config it returns names stored artifacts, so it must not change."""
    if name == "random":
        return {"dim": 384, "seed": config.seed}, {"dim": 384, "seed": config.seed, "tile": config.tile}
    if name == "pixelstats":
        return {}, {"tile": config.tile}
    if name in ("mae", "openphenom"):
        if name == "openphenom" and not config.checkpoint:
            raise FileNotFoundError("the openphenom embedder needs --checkpoint DIR")
        ckpt = Path(config.checkpoint) if config.checkpoint else REPO / "models" / "mae_tiny_demo"
        fp = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()[:16]
        recorded = {}
        if getattr(config, "block", "auto") in (None, "auto") or getattr(config, "channelwise", None) is None:
            path = ckpt / "embedding.json"
            if path.exists():
                import json

                recorded = json.loads(path.read_text())
        block = getattr(config, "block", "auto")
        block = str(recorded.get("block", "last")) if block in (None, "auto") else str(block)
        cw = getattr(config, "channelwise", None)
        channelwise = bool(recorded.get("channelwise", False)) if cw is None else bool(cw)
        build = {"checkpoint": str(ckpt), "device": config.device, "block": "all" if block == "best" else block,
                 "channelwise": channelwise, "n_channels": len(screen.channels) if channelwise else None}
        key = {"checkpoint_sha": fp, "block": block, "channelwise": channelwise}
        if block == "best":
            key.update(tvn_components=config.tvn_components, tvn_fallback=config.tvn_fallback, seed=config.seed)
        return build, key
    raise ValueError(f"unknown embedder {name!r}")


def _config(**kw: Any) -> SimpleNamespace:
    base = dict(seed=0, tile=256, checkpoint=None, device="auto", block="auto", channelwise=None,
                tvn_components="auto", tvn_fallback="error")
    return SimpleNamespace(**{**base, **kw})


SCREEN = SimpleNamespace(channels=("DNA", "ER", "RNA", "AGP", "Mito"))


def test_the_registry_lists_the_four_embedders_in_order_with_labels():
    assert registry.embedder_names() == ("random", "pixelstats", "mae", "openphenom")
    labels = registry.embedder_labels()
    assert labels == {"random": "random", "pixelstats": "pixel statistics", "mae": "MAE",
                      "openphenom": "OpenPhenom", "features": "precomputed features"}
    assert registry.mae_embedder_names() == ("mae", "openphenom")
    assert registry.cli_choices() == ["random", "pixelstats", "mae", "openphenom", "features"]
    assert "openphenom: " in registry.cli_help() and registry.cli_help().endswith("(no images needed)")
    assert not registry.is_mae("features") and not registry.is_mae("pixelstats")


def test_listing_the_embedders_loads_no_torch():
    import subprocess

    code = "import sys; from precompute.embed import registry; registry.cli_choices(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("cfg", [
    _config(), _config(seed=7, tile=128), _config(block="last", channelwise=False), _config(block="2"),
    _config(block="best", channelwise=True, tvn_components=32, tvn_fallback="pooled", seed=3),
    _config(checkpoint=str(DEFAULT_CHECKPOINT), device="cpu"),
])
@pytest.mark.parametrize("name", ["random", "pixelstats", "mae", "openphenom"])
def test_stage_options_are_the_old_ones(name, cfg):
    if name == "openphenom" and not cfg.checkpoint:
        with pytest.raises(FileNotFoundError, match="openphenom embedder needs --checkpoint"):
            registry.stage_options(name, SCREEN, cfg)
        return
    assert registry.stage_options(name, SCREEN, cfg) == _old_embedder_options(name, SCREEN, cfg)


def test_a_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: MAE checkpoint missing"):
        registry.stage_options("mae", SCREEN, _config(checkpoint=str(tmp_path)))


def test_an_unknown_embedder_names_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown embedder 'cellprofiler'; choose one of random, pixelstats, mae, openphenom"):
        get_embedder("cellprofiler")
    with pytest.raises(ValueError, match="unknown embedder 'nope'"):
        registry.stage_options("nope", SCREEN, _config())


def test_names_are_checked_and_a_second_module_cannot_take_a_name():
    def build(**_: Any) -> Any:
        return None

    def options(screen: Any, config: Any) -> tuple[dict, dict]:
        return {}, {}

    for bad in ("", "Upper", "features"):
        with pytest.raises(ValueError, match="embedder name"):
            registry.EmbedderSpec(name=bad, label="x", build=build, stage_options=options)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.EmbedderSpec(name="random", label="x", build=build, stage_options=options))
    assert registry.get_spec("random").label == "random"


THROWAWAY = '''
"""A throwaway embedder: the mean of every channel, one file."""
import numpy as np

from precompute.embed.registry import EmbedderSpec, register


class ChannelMeans:
    name = "channelmeans"

    def __init__(self, n_channels=3):
        self.dim = n_channels

    def embed_tiles(self, tiles):
        return np.asarray(tiles, dtype=np.float32).mean(axis=(2, 3))


def stage_options(screen, config):
    return {"n_channels": len(screen.channels)}, {"tile": config.tile}


register(EmbedderSpec(name="channelmeans", label="channel means", build=ChannelMeans,
                      stage_options=stage_options, order=25))
'''


@pytest.fixture
def throwaway_embedder(tmp_path, monkeypatch):
    """One new file in a package of embedders, discovered as precompute.embed.embedders' are."""
    pkg = tmp_path / "more_embedders"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "channel_means.py").write_text(textwrap.dedent(THROWAWAY))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.discover("more_embedders")
    yield "channelmeans"
    registry.unregister("channelmeans")
    for mod in [m for m in sys.modules if m.split(".")[0] == "more_embedders"]:
        del sys.modules[mod]


def test_a_new_embedder_file_reaches_the_cli_labels_and_the_stage(throwaway_embedder):
    from precompute.__main__ import build_parser

    name = throwaway_embedder
    assert registry.embedder_names() == ("random", "pixelstats", name, "mae", "openphenom")
    assert registry.embedder_labels()[name] == "channel means"
    args = build_parser().parse_args(["run", "--embedder", name, "--embedder", "features"])
    assert args.embedder == [name, "features"]
    build, key = registry.stage_options(name, SCREEN, _config(tile=64))
    assert (build, key) == ({"n_channels": 5}, {"tile": 64})
    emb = get_embedder(name, **build)
    images = np.full((2, 5, 64, 64), 51, dtype=np.uint8)
    np.testing.assert_allclose(embed_well(emb, images, tile=32), np.full(5, 0.2, np.float32), rtol=1e-6)


def test_the_throwaway_is_gone_afterwards():
    from precompute.__main__ import build_parser

    assert "channelmeans" not in registry.embedder_names()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--embedder", "channelmeans"])


def test_figures_and_the_demo_scorecard_label_embedders_from_the_registry():
    from phenomix_dash.figures.benchmarks import EMBEDDER_ORDER, embedder_label

    assert EMBEDDER_ORDER == ("random", "pixelstats", "mae", "openphenom", "features")
    assert [embedder_label(e) for e in ("pixelstats", "mae", "features", "other")] == [
        "pixel statistics", "MAE", "precomputed features", "other"]
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.demo_scorecard import LABELS
    finally:
        sys.path.remove(str(REPO))
    assert LABELS["pixelstats"] == "pixel statistics" and LABELS["mae"] == "CA-MAE (tiny, shipped)"
