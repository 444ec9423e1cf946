"""The channel-agnostic MAE: shapes, masking, channel agnosticism, learning, checkpoints, Lion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from precompute.embed import embed_well, get_embedder
from precompute.embed.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from precompute.embed.lion import Lion
from precompute.embed.mae import ChannelAgnosticMAE, resolve_device
from precompute.embed.mae_config import MAEConfig, MAEConfigError, config_by_name, mae_tiny
from precompute.embed.mae_embedder import MAEEmbedder
from precompute.embed.train import reconstruct_tile, train_mae


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread here, restored afterwards for the other test files.

    These models are too small to gain from two threads, and on a busy machine OpenMP threads
    waiting for each other made the learning test over 10x slower than a single thread.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SIZE = 32  # mae_tiny at 32 px: patch 8 -> 16 patches per channel


def tiny(**overrides) -> ChannelAgnosticMAE:
    torch.manual_seed(0)
    return ChannelAgnosticMAE(mae_tiny(img_size=SIZE, **overrides)).eval()


def blobs(n: int, channels: int, seed: int = 0) -> np.ndarray:
    """Gaussian blobs, the same layout in every channel at channel-specific brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = np.zeros((n, channels, SIZE, SIZE), np.float32)
    for i in range(n):
        for _ in range(3):
            cy, cx = rng.uniform(0, SIZE, 2)
            r = rng.uniform(4, 8)
            g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            out[i] += g[None] * rng.uniform(0.3, 1, (channels, 1, 1))
    return np.clip(out, 0, 1).astype(np.float32)


def test_patchify_unpatchify_round_trip():
    model = tiny()
    x = torch.rand(2, 5, SIZE, SIZE)
    tokens = model.patchify(x)
    assert tokens.shape == (2, 5 * 16, 64)
    # channel-major: token 16 is channel 1's first patch
    torch.testing.assert_close(tokens[0, 16], x[0, 1, :8, :8].reshape(-1))
    torch.testing.assert_close(model.unpatchify(tokens, 5), x)
    rect = torch.rand(1, 2, 16, 40)
    torch.testing.assert_close(model.unpatchify(model.patchify(rect), 2, grid=(2, 5)), rect)


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9])
def test_random_masking_keeps_int_n_times_one_minus_r(ratio):
    model = tiny()
    n = 5 * 16
    x = torch.randn(3, n, 4)
    kept, mask, ids_restore = model.random_masking(x, ratio, torch.Generator().manual_seed(1))
    keep = int(n * (1 - ratio))  # OpenPhenom's len_keep (floor)
    assert kept.shape == (3, keep, 4)
    assert (mask.sum(1) == n - keep).all()
    for b in range(3):  # the kept tokens are exactly those the mask marks visible
        visible = x[b, mask[b] == 0]
        assert sorted(map(tuple, visible.tolist())) == sorted(map(tuple, kept[b].tolist()))
    assert (torch.argsort(ids_restore, 1).gather(1, ids_restore) == torch.arange(n)).all()


def test_forward_shapes_and_mask_ratio():
    model = tiny()
    loss, pred, mask = model(torch.rand(4, 6, SIZE, SIZE))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert pred.shape == (4, 6 * 16, 64) and mask.shape == (4, 6 * 16)
    assert mask.mean().item() == pytest.approx(0.75)


def test_embed_shape_and_determinism():
    x = torch.rand(3, 5, SIZE, SIZE)
    a = tiny().embed(x)
    assert a.shape == (3, 128)
    torch.testing.assert_close(a, tiny().embed(x), rtol=0, atol=0)  # same seed, same vectors
    torch.testing.assert_close(a[1:2], tiny().embed(x[1:2]), rtol=1e-5, atol=1e-5)


def test_one_model_embeds_3_5_and_6_channels():
    model = tiny()
    for c in (3, 5, 6):
        with torch.no_grad():
            assert model.embed(torch.rand(2, c, SIZE, SIZE)).shape == (2, 128)
            loss, pred, _ = model(torch.rand(2, c, SIZE, SIZE))
        assert pred.shape == (2, c * 16, 64) and torch.isfinite(loss)
    with pytest.raises(ValueError, match="up to 6 channels"):
        model(torch.rand(1, 7, SIZE, SIZE))  # the decoder has 6 channel tokens and stacks
    assert model.embed(torch.rand(1, 11, SIZE, SIZE)).shape == (1, 128)  # the encoder takes 11
    with pytest.raises(ValueError, match="at most 11 channels"):
        model.embed(torch.rand(1, 12, SIZE, SIZE))


def test_embedding_ignores_channel_order():
    # Documented property of CA-MAE: the encoder never sees channel identity.
    model = tiny()
    x = torch.rand(2, 5, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(x), model.embed(x[:, [4, 2, 0, 1, 3]]), rtol=1e-4, atol=1e-5)


def test_tiny_model_learns_structured_tiles():
    tiles = blobs(128, 3)
    cfg = mae_tiny(img_size=SIZE, depth=2)
    _, hist = train_mae(
        tiles,
        cfg,
        steps=150,
        batch_size=16,
        lr=1e-3,
        optimizer="adamw",
        warmup=5,
        device="cpu",
        log_every=10,
        progress=False,
        augment=False,
    )
    losses = [row["loss"] for row in hist["curve"]]
    assert len(losses) == 15 and hist["final_loss"] == losses[-1]
    # Predicting the channel mean scores ~1.0 on instance-normalised pixels; going well below
    # it means the model uses the visible patches (blobs are shared across channels).
    assert min(losses[-3:]) < 0.85 < losses[0]


def test_training_is_deterministic_on_cpu():
    tiles = (blobs(16, 3) * 255).astype(np.uint8)  # integer tiles are taken too
    cfg = mae_tiny(img_size=24, depth=1, decoder_depth=1)
    runs = [train_mae(tiles, cfg, steps=4, batch_size=4, device="cpu", seed=3, progress=False) for _ in range(2)]
    (m1, h1), (m2, h2) = runs
    assert [r["loss"] for r in h1["curve"]] == [r["loss"] for r in h2["curve"]]
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)


def test_save_load_round_trip_gives_identical_embeddings(tmp_path):
    model = tiny()
    history = {"curve": [{"step": 1, "loss": 1.0, "lr": 1e-4, "tiles_per_s": 10.0}], "final_loss": 1.0}
    out = save_checkpoint(
        model, model.config, tmp_path / "ckpt", history=history, extra_meta={"command": "test", "data": "blobs"}
    )
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "training.json"]
    meta = json.loads((out / "training.json").read_text())
    assert meta["final_loss"] == 1.0 and meta["command"] == "test" and len(meta["weights_sha256"]) == 64
    loaded, config, meta2 = load_checkpoint(out)
    assert config == model.config and meta2["data"] == "blobs"
    x = torch.rand(2, 4, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed(x), model.embed(x), rtol=0, atol=0)
    # the Embedder over the checkpoint gives the same vectors, and averages crops of big tiles
    emb = get_embedder("mae", checkpoint=out, device="cpu", batch_size=3)
    tiles = x.numpy()
    np.testing.assert_allclose(emb.embed_tiles(tiles), model.embed(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    big = np.random.default_rng(0).random((1, 4, 2 * SIZE, 2 * SIZE), dtype=np.float32)
    crops = [big[:, :, y : y + SIZE, xx : xx + SIZE] for y in (0, SIZE) for xx in (0, SIZE)]
    expected = np.mean([emb.embed_tiles(c)[0] for c in crops], axis=0)
    np.testing.assert_allclose(emb.embed_tiles(big)[0], expected, rtol=1e-4, atol=1e-5)
    assert embed_well(emb, (big * 255).astype(np.uint8), tile=SIZE).shape == (128,)
    # saving again over an existing checkpoint replaces it
    save_checkpoint(tiny(), model.config, out)
    assert not (out / "training.json").read_text().count('"command"')


def test_corrupt_or_missing_checkpoint_names_the_file(tmp_path):
    model = tiny()
    out = save_checkpoint(model, model.config, tmp_path / "ckpt")
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(out)
    (out / "training.json").unlink()  # no checksum to compare: the reader must still object
    with pytest.raises(CheckpointError, match="model.safetensors"):
        MAEEmbedder(out, device="cpu")
    (out / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(out)
    with pytest.raises(CheckpointError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere")
    assert issubclass(CheckpointError, ValueError)


def test_reconstruct_shapes_and_errors():
    model = tiny()
    imgs = blobs(2, 5)
    out = model.reconstruct(imgs, mask_ratio=0.75, seed=7)
    for key in ("input", "masked_input", "reconstruction", "reconstruction_pasted", "mask"):
        assert out[key].shape == (2, 5, SIZE, SIZE), key
    assert out["mask"].dtype == bool and out["mask"].mean() == pytest.approx(0.75)
    assert out["per_channel_mse"].shape == (2, 5) and np.isfinite(out["per_channel_mse"]).all()
    assert (out["masked_input"][out["mask"]] == 0).all()
    np.testing.assert_array_equal(out["reconstruction_pasted"][~out["mask"]], imgs[~out["mask"]])
    again = model.reconstruct(imgs, mask_ratio=0.75, seed=7)
    np.testing.assert_array_equal(again["mask"], out["mask"])
    one = reconstruct_tile(model, (imgs[0] * 255).astype(np.uint8))
    assert one["reconstruction"].shape == (5, SIZE, SIZE) and one["per_channel_mse"].shape == (5,)


def test_lion_update_rule():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = Lion([p], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    p.grad = torch.tensor([0.3, -0.1, 0.0])
    opt.step()
    # decay by (1 - lr * wd), then step by -lr * sign(grad) (momentum starts at 0)
    torch.testing.assert_close(p.detach(), torch.tensor([0.95 - 0.1, -1.9 + 0.1, 0.475]))
    torch.testing.assert_close(opt.state[p]["exp_avg"], torch.tensor([0.003, -0.001, 0.0]))


def test_config_validation_and_round_trip():
    cfg = mae_tiny()
    assert MAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(MAEConfigError, match="patch_size"):
        MAEConfig(img_size=100, patch_size=16)
    with pytest.raises(MAEConfigError, match="bogus"):
        MAEConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    assert config_by_name("mae_vit_small_patch16").embed_dim == 384
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
