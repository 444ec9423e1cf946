"""OpenPhenom compatibility: a CA-MAE built from timm's own ViT (the public model's code path) with
random weights, saved as Recursion distributes OpenPhenom, loads through our loader and gives the
same embeddings (``predict``, channel-wise too) and the same decoder reconstructions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from precompute.embed import get_embedder
from precompute.embed.checkpoint import CheckpointError, load_checkpoint
from precompute.embed.mae import ChannelAgnosticMAE, instance_normalize
from precompute.embed.mae_config import MAEConfig
from precompute.embed.openphenom_io import save_openphenom_layout

sys.path.insert(0, str(Path(__file__).parent))
from timm_oracle import reference_openphenom  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, max_in_chans=11,
             decoder_dim=32, decoder_depth=2, decoder_heads=4, decoder_channels=5, decoder_eps=1e-5)


def _randomise(model: torch.nn.Module, seed: int, scale: float) -> torch.nn.Module:
    """Non-trivial weights everywhere: LayerScale gammas, norm weights and biases, tokens, linears
    (a test passing with LayerScale 1e-4 and unit norms would not see most mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


def _our_config(kw: dict) -> MAEConfig:
    return MAEConfig(img_size=kw["img_size"], patch_size=kw["patch_size"], embed_dim=kw["embed_dim"], depth=kw["depth"],
                     num_heads=kw["num_heads"], max_in_chans=kw["max_in_chans"], decoder_embed_dim=kw["decoder_dim"],
                     decoder_depth=kw["decoder_depth"], decoder_num_heads=kw["decoder_heads"],
                     decoder_channels=kw["decoder_channels"], decoder_norm_eps=kw["decoder_eps"])


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return _randomise(reference_openphenom(**SMALL), seed=1, scale=0.3)


@pytest.fixture(scope="module")
def public_folder(reference, tmp_path_factory) -> Path:
    """The reference saved as OpenPhenom is distributed: config.json + torch-saved {'state_dict'}."""
    return save_openphenom_layout(reference.state_dict(), _our_config(SMALL), tmp_path_factory.mktemp("op") / "OpenPhenom")


def test_the_parameter_layout_is_the_public_model_name_for_name_and_shape_for_shape():
    """ViT-S/16 at 256 px, 11 input channels, the public decoder's sizes: every name and shape equal."""
    kw = dict(SMALL, img_size=256, patch_size=16, embed_dim=384, depth=12, num_heads=6, decoder_dim=256,
              decoder_depth=1, decoder_heads=16, decoder_channels=6)
    ref = reference_openphenom(**kw).state_dict()
    ours = ChannelAgnosticMAE(_our_config(kw)).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert "encoder.vit_backbone.blocks.11.ls.gamma" in ours and "encoder.vit_backbone.fc_norm.weight" in ours
    assert "encoder.vit_backbone.norm.weight" not in ours  # avg pool: timm's norm is the identity
    assert "encoder.vit_backbone.blocks.0.in_proj.bias" not in ours  # qkv_bias=False
    assert tuple(ours["encoder.vit_backbone.pos_embed"].shape) == (1, 1 + 11 * 256, 384)


@pytest.mark.parametrize("channels", [1, 5, 6, 11])
def test_embeddings_equal_the_timm_reference(reference, public_folder, channels):
    emb = get_embedder("openphenom", checkpoint=str(public_folder), device="cpu")
    pixels = torch.randint(0, 256, (3, channels, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(channels))
    with torch.no_grad():
        want = reference.predict(pixels).numpy()
    got = emb.embed_tiles(pixels.numpy())
    assert got.shape == (3, 64)
    assert np.abs(want).max() > 1.0  # not a degenerate model
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("channels", [1, 6])
def test_channelwise_embeddings_equal_the_reference(reference, public_folder, channels):
    emb = get_embedder("openphenom", checkpoint=str(public_folder), device="cpu", channelwise=True, n_channels=channels)
    pixels = torch.randint(0, 256, (2, channels, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = reference.predict(pixels, channelwise=True).numpy()
    got = emb.embed_tiles(pixels.numpy())
    assert got.shape == (2, channels * 64) == want.shape
    assert np.abs(got - want).max() < 1e-5


def test_decoder_reconstructions_equal_the_reference(reference, public_folder):
    """Same mask (OpenPhenom's constant_noise), same predicted patches: what the Images page shows."""
    model, _, meta = load_checkpoint(public_folder)
    assert meta["format"] == "openphenom"
    pixels = torch.randint(0, 256, (2, 5, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    noise = torch.rand(2, 5 * 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = reference.reconstruct(pixels, noise)
        normed, _, _ = instance_normalize(pixels.float() / 255.0)
        latent, _, ids = model.forward_encoder(normed, 0.75, noise=noise)
        got = model.forward_decoder(latent, ids)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    shown = model.reconstruct(pixels.float() / 255.0, noise=noise)["reconstruction"]
    _, mean, std = instance_normalize(pixels.float() / 255.0)
    back = (torch.as_tensor(shown) - mean) / std
    torch.testing.assert_close(model.patchify(back), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_real_safetensors_load_too(reference, tmp_path):
    folder = save_openphenom_layout(reference.state_dict(), _our_config(SMALL), tmp_path / "st", torch_saved=False)
    pixels = torch.randint(0, 256, (2, 6, 32, 32), dtype=torch.uint8)
    got = get_embedder("openphenom", checkpoint=str(folder), device="cpu").embed_tiles(pixels.numpy())
    with torch.no_grad():
        assert np.abs(got - reference.predict(pixels).numpy()).max() < 1e-5


def test_any_block_embeds_as_the_reference_blocks_output(reference, public_folder):
    """--block N: the mean of block N's patch tokens (timm's blocks run one by one)."""
    pixels = torch.randint(0, 256, (2, 5, 32, 32), dtype=torch.uint8)
    emb = get_embedder("openphenom", checkpoint=str(public_folder), device="cpu", block=2)
    vit = reference.encoder.vit_backbone
    with torch.no_grad():
        x = vit._pos_embed(vit.patch_embed(reference.input_norm(pixels)))
        want = vit.blocks[1](vit.blocks[0](x))[:, 1:].mean(dim=1).numpy()
    assert np.abs(emb.embed_tiles(pixels.numpy()) - want).max() < 1e-5
    every = get_embedder("openphenom", checkpoint=str(public_folder), device="cpu", block="all")
    assert every.dim == 3 * 64
    assert np.abs(every.embed_tiles(pixels.numpy())[:, 64:128] - want).max() < 1e-5
    with pytest.raises(ValueError, match="blocks 1..3"):
        get_embedder("openphenom", checkpoint=str(public_folder), device="cpu", block=4)


def test_a_broken_public_folder_is_named(public_folder, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "MAE"}))
    (bad / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(bad)
    with open(public_folder / "model.safetensors", "rb") as fh:  # a path ending .safetensors goes to safetensors
        state = torch.load(fh, weights_only=True)["state_dict"]
    del state["decoder.mask_token"]
    (bad / "config.json").write_text((public_folder / "config.json").read_text())
    with open(bad / "model.safetensors", "wb") as fh:
        torch.save({"state_dict": state}, fh)
    with pytest.raises(CheckpointError, match="decoder.mask_token"):
        load_checkpoint(bad)


def test_the_pipeline_runs_on_a_public_layout_folder(public_folder, tiny_screen, tmp_path):
    """`python -m precompute run --embedder openphenom --checkpoint DIR`, as a user runs it."""
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "precompute", "run", "--screen", str(tiny_screen), "--store", str(store),
           "--embedder", "pixelstats", "--embedder", "openphenom", "--checkpoint", str(public_folder), "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((store / "runs" / "default.json").read_text())
    assert run["primary"]["embedder"] == "openphenom"
    manifest = json.loads((store / f"embed-{run['stages']['embed']['openphenom']}" / "manifest.json").read_text())
    assert manifest["info"]["dim"] == 64 and manifest["info"]["block"]["chosen"] == 3
