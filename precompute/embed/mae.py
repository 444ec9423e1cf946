"""Channel-agnostic masked autoencoder (CA-MAE) for Cell Painting tiles, in plain torch.nn.

Follows Kraus et al. 2024 and Recursion's public OpenPhenom (recursionpharma/maes_microscopy),
with the MAE recipe of He et al. 2022 (facebookresearch/mae); written here from the papers:

- Inputs in [0, 1] are instance-normalised per image and channel; the loss is on those pixels.
- Every channel is patchified on its own by ONE shared ``Conv2d(1, D, p, stride=p)``, and every
  channel's patches get the SAME fixed 2-D sin-cos position embedding. The encoder therefore never
  learns channel identity: any number of channels can be embedded, and swapping channels leaves
  the embedding unchanged (channels are told apart by their content only).
- 75 % of all channel-patch tokens are masked at random; the decoder adds one learned token per
  channel (up to ``max_channels``) so it knows which channel to paint.
- Loss = (1 - w) * MSE on masked patches + w * Fourier loss, w = 0.01. The Fourier loss is the L1
  distance between |FFT2| of predicted and true patches (orthonormal FFT, so the weight means the
  same for any patch size), also on masked patches only.
- A tile's embedding is the mean of the encoder's patch tokens after the final LayerNorm (class
  token excluded), 384-d for ViT-S.

Token order everywhere is channel-major: token ``c * L + l`` is patch ``l`` (row-major) of channel
``c``, with ``L = (H / p) * (W / p)``.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MAEConfigError(ValueError):
    """An MAEConfig that cannot build a model; the message names the field."""


@dataclass(frozen=True)
class MAEConfig:
    """Architecture and loss settings; saved as config.json beside the weights."""

    img_size: int = 256
    patch_size: int = 16
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    decoder_embed_dim: int = 256
    decoder_depth: int = 4
    decoder_num_heads: int = 8
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    fourier_weight: float = 0.01
    max_channels: int = 8
    qk_norm: bool = True  # OpenPhenom's ViTs normalise queries and keys; it steadies training
    norm_pix_loss: bool = False  # OpenPhenom: off (inputs are already instance-normalised)

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise MAEConfigError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        for dim, heads, label in (
            (self.embed_dim, self.num_heads, "embed_dim/num_heads"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder_embed_dim/decoder_num_heads"),
        ):
            if dim % heads:
                raise MAEConfigError(f"{label}: {dim} is not divisible by {heads} heads")
            if dim % 4:
                raise MAEConfigError(f"{label}: {dim} must be a multiple of 4 (sin-cos embedding)")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise MAEConfigError(f"mask_ratio must be in [0, 1); got {self.mask_ratio}")
        if not 0.0 <= self.fourier_weight < 1.0:
            raise MAEConfigError(f"fourier_weight must be in [0, 1); got {self.fourier_weight}")
        if self.max_channels < 1:
            raise MAEConfigError(f"max_channels must be positive; got {self.max_channels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MAEConfigError(f"unknown MAEConfig keys: {', '.join(unknown)}")
        return cls(**data)

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size


def mae_tiny(img_size: int = 64, **overrides: Any) -> MAEConfig:
    """~1 M parameters, patch 8: a 64x64 tile gives 64 patches per channel; trains on a CPU."""
    base = dict(
        img_size=img_size,
        patch_size=8,
        embed_dim=128,
        depth=4,
        num_heads=4,
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=4,
    )
    return MAEConfig(**{**base, **overrides})


def mae_vit_small_patch16(img_size: int = 256, **overrides: Any) -> MAEConfig:
    """ViT-S/16 encoder (384 x 12, 6 heads) with OpenPhenom's light decoder (256 x 4)."""
    base = dict(
        img_size=img_size,
        patch_size=16,
        embed_dim=384,
        depth=12,
        num_heads=6,
        decoder_embed_dim=256,
        decoder_depth=4,
        decoder_num_heads=8,
    )
    return MAEConfig(**{**base, **overrides})


def mae_vit_base_patch16(img_size: int = 256, **overrides: Any) -> MAEConfig:
    """ViT-B/16 encoder (768 x 12, 12 heads) with the MAE paper's decoder (512 x 8)."""
    base = dict(
        img_size=img_size,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        decoder_embed_dim=512,
        decoder_depth=8,
        decoder_num_heads=16,
    )
    return MAEConfig(**{**base, **overrides})


CONFIG_FACTORIES = {
    "mae_tiny": mae_tiny,
    "mae_vit_small_patch16": mae_vit_small_patch16,
    "mae_vit_base_patch16": mae_vit_base_patch16,
}


def config_by_name(name: str, **overrides: Any) -> MAEConfig:
    """'mae_tiny' | 'mae_vit_small_patch16' | 'mae_vit_base_patch16' -> MAEConfig."""
    if name not in CONFIG_FACTORIES:
        raise MAEConfigError(f"unknown model {name!r}; choose one of {', '.join(CONFIG_FACTORIES)}")
    return CONFIG_FACTORIES[name](**overrides)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without a GPU raises a clear error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}")
    return torch.device(device)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); plain float32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding -> (grid_h * grid_w, dim), row-major positions.

    Half the width encodes the row, half the column, each as sin and cos of position times
    frequencies 1 / 10000^(i / (dim / 4)).
    """
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64),
        torch.arange(grid_w, dtype=torch.float64),
        indexing="ij",
    )
    ang_y = ys.reshape(-1, 1) * omega
    ang_x = xs.reshape(-1, 1) * omega
    emb = torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1)
    return emb.float()


def instance_normalize(imgs: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> (normalised, mean (B, C, 1, 1), std (B, C, 1, 1)); per image and channel.

    Same arithmetic as InstanceNorm2d without affine: (x - mean) / sqrt(var + eps). A blank channel
    becomes all zeros instead of dividing by zero.
    """
    x = imgs.float()
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    std = torch.sqrt(var + eps)
    return (x - mean) / std, mean, std


class Attention(nn.Module):
    """Multi-head self-attention through scaled_dot_product_attention (flash kernels on GPU)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        out = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qk_norm: bool) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ChannelAgnosticMAE(nn.Module):
    """CA-MAE: shared per-channel patch embedding, ViT encoder, light transformer decoder."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        d, dd, p = config.embed_dim, config.decoder_embed_dim, config.patch_size
        self.patch_embed = nn.Conv2d(1, d, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(
            Block(d, config.num_heads, config.mlp_ratio, config.qk_norm) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.channel_tokens = nn.Parameter(torch.zeros(1, config.max_channels, 1, dd))
        self.decoder_blocks = nn.ModuleList(
            Block(dd, config.decoder_num_heads, config.mlp_ratio, config.qk_norm) for _ in range(config.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, p * p)
        g = config.grid_size
        # Fixed, so not saved in checkpoints (persistent=False); rebuilt for other grid sizes.
        self.register_buffer("pos_embed", sincos_pos_embed_2d(d, g, g), persistent=False)
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(dd, g, g), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        # MAE recipe: xavier-uniform linears (patch conv treated as a linear), N(0, .02) tokens.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for token in (self.cls_token, self.mask_token, self.channel_tokens):
            nn.init.normal_(token, std=0.02)

    def _grid(self, imgs: torch.Tensor) -> tuple[int, int]:
        p = self.config.patch_size
        h, w = imgs.shape[-2:]
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not a multiple of patch size {p}")
        return h // p, w // p

    def _pos(self, buffer: torch.Tensor, dim: int, grid: tuple[int, int]) -> torch.Tensor:
        if grid == (self.config.grid_size,) * 2:
            return buffer
        return sincos_pos_embed_2d(dim, *grid).to(buffer.device)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C * L, p * p), channel-major tokens, row-major pixels in a patch."""
        b, c, h, w = imgs.shape
        p = self.config.patch_size
        gh, gw = self._grid(imgs)
        x = imgs.reshape(b, c, gh, p, gw, p).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(b, c * gh * gw, p * p)

    def unpatchify(self, x: torch.Tensor, n_channels: int, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, C * L, p * p) -> (B, C, H, W); ``grid`` (gh, gw) defaults to a square grid."""
        b, n, _ = x.shape
        p = self.config.patch_size
        per_channel = n // n_channels
        if grid is None:
            side = int(round(per_channel**0.5))
            grid = (side, side)
        gh, gw = grid
        if gh * gw * n_channels != n:
            raise ValueError(f"{n} tokens do not form {n_channels} channels of a {gh}x{gw} grid")
        x = x.reshape(b, n_channels, gh, gw, p, p).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(b, n_channels, gh * p, gw * p)

    def random_masking(
        self, x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random round(N * (1 - r)) tokens per sample (at least 1).

        x (B, N, D) -> kept (B, K, D), mask (B, N) with 1 = masked, ids_restore (B, N) that
        puts the [kept, masked] order back into token order. A CPU ``generator`` makes the mask
        reproducible on any device.
        """
        b, n, d = x.shape
        keep = max(1, int(round(n * (1.0 - mask_ratio))))
        if generator is None:
            noise = torch.rand(b, n, device=x.device)
        else:
            noise = torch.rand(b, n, generator=generator).to(x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def _tokens(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalised -> (B, C * L, D) patch tokens with position embedding."""
        b, c = imgs.shape[:2]
        grid = self._grid(imgs)
        x = self.patch_embed(imgs.reshape(b * c, 1, *imgs.shape[-2:]))  # (B*C, D, gh, gw)
        x = x.flatten(2).transpose(1, 2).reshape(b, c, grid[0] * grid[1], -1)
        x = x + self._pos(self.pos_embed, self.config.embed_dim, grid)
        return x.reshape(b, c * grid[0] * grid[1], -1)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, D) tokens -> (B, 1 + K, D): prepend class token, run blocks, final LayerNorm."""
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised (B, C, H, W) -> latent (B, 1 + K, D), mask (B, C * L), ids_restore (B, C * L)."""
        kept, mask, ids_restore = self.random_masking(self._tokens(imgs), mask_ratio, generator)
        return self._encode(kept), mask, ids_restore

    def forward_decoder(
        self,
        latent: torch.Tensor,
        ids_restore: torch.Tensor,
        n_channels: int,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        """latent (B, 1 + K, D) -> predicted normalised pixels (B, C * L, p * p).

        Channel tokens are taken by position (channel c gets token c), so reconstructions are
        meaningful only when channels come in the order the model was trained on.
        """
        if n_channels > self.config.max_channels:
            raise ValueError(
                f"the decoder knows {self.config.max_channels} channels; got {n_channels} "
                "(embedding needs no decoder and takes any number)"
            )
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        dd = x.shape[-1]
        fill = self.mask_token.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], fill], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dd))
        pos = self._pos(self.decoder_pos_embed, dd, grid)
        x_ = x_.view(b, n_channels, -1, dd) + pos + self.channel_tokens[:, :n_channels]
        x = torch.cat([x[:, :1], x_.reshape(b, n, dd)], dim=1)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward_loss(
        self,
        imgs: torch.Tensor,
        pred: torch.Tensor,
        mask: torch.Tensor,
        return_terms: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Normalised imgs (B, C, H, W), pred (B, C * L, p * p), mask (B, C * L) -> scalar loss.

        (1 - w) * mean squared error + w * mean |FFT2| L1, both averaged over masked patches only.
        """
        target = self.patchify(imgs)
        pred = pred.float()
        if self.config.norm_pix_loss:
            mu = target.mean(dim=-1, keepdim=True)
            target = (target - mu) / (target.var(dim=-1, keepdim=True) + 1e-6).sqrt()
        denom = mask.sum().clamp_min(1.0)
        mse = (((pred - target) ** 2).mean(dim=-1) * mask).sum() / denom
        p = self.config.patch_size
        w = self.config.fourier_weight
        if w > 0:
            spec_pred = torch.fft.fft2(pred.view(*pred.shape[:2], p, p), norm="ortho").abs()
            spec_true = torch.fft.fft2(target.view(*target.shape[:2], p, p), norm="ortho").abs()
            fourier = ((spec_pred - spec_true).abs().mean(dim=(-2, -1)) * mask).sum() / denom
        else:
            fourier = torch.zeros((), device=pred.device)
        loss = (1.0 - w) * mse + w * fourier
        if return_terms:
            return loss, {"mse": mse.detach(), "fourier": fourier.detach()}
        return loss

    def forward(
        self,
        imgs: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """imgs (B, C, H, W) in [0, 1] -> (loss, pred (B, C * L, p * p), mask (B, C * L))."""
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        normed, _, _ = instance_normalize(imgs)
        latent, mask, ids_restore = self.forward_encoder(normed, ratio, generator)
        pred = self.forward_decoder(latent, ids_restore, imgs.shape[1], self._grid(imgs))
        return self.forward_loss(normed, pred, mask), pred, mask

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs (B, C, H, W) in [0, 1], any C -> (B, embed_dim): mean of normed patch tokens."""
        normed, _, _ = instance_normalize(imgs)
        return self._encode(self._tokens(normed))[:, 1:].mean(dim=1)

    @torch.inference_mode()
    def reconstruct(
        self, imgs: np.ndarray | torch.Tensor, mask_ratio: float | None = None, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """Mask, encode, decode, and return numpy arrays for display (n = batch, C channels).

        - ``input`` (n, C, H, W) float32: the images as given.
        - ``masked_input`` (n, C, H, W): input with masked patches set to 0.
        - ``reconstruction`` (n, C, H, W): decoder output for every patch, un-normalised back to
          the input scale (not clipped: callers clip to [0, 1] for display).
        - ``reconstruction_pasted`` (n, C, H, W): visible patches from the input, masked ones
          from the reconstruction (the MAE paper's figures).
        - ``mask`` (n, C, H, W) bool: True where a pixel's patch was masked.
        - ``per_channel_mse`` (n, C): MSE on masked patches in normalised units (NaN if none).
        """
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        device = next(self.parameters()).device
        x = torch.as_tensor(np.asarray(imgs) if not torch.is_tensor(imgs) else imgs)
        x = x.float().to(device)
        if x.ndim != 4:
            raise ValueError(f"reconstruct needs (n, C, H, W) images; got shape {tuple(x.shape)}")
        n, c = x.shape[:2]
        grid = self._grid(x)
        normed, mean, std = instance_normalize(x)
        gen = torch.Generator().manual_seed(seed)
        with autocast_for(device):
            latent, mask, ids_restore = self.forward_encoder(normed, ratio, gen)
            pred = self.forward_decoder(latent, ids_restore, c, grid)
        pred = pred.float()
        err = ((pred - self.patchify(normed)) ** 2).mean(dim=-1).view(n, c, -1)
        mask_c = mask.view(n, c, -1)
        per_channel = (err * mask_c).sum(-1) / mask_c.sum(-1)  # 0/0 -> NaN, as documented
        recon = self.unpatchify(pred, c, grid) * std + mean
        p2 = self.config.patch_size**2
        pix_mask = self.unpatchify(mask.unsqueeze(-1).expand(-1, -1, p2), c, grid) > 0.5
        out = {
            "input": x,
            "masked_input": torch.where(pix_mask, torch.zeros_like(x), x),
            "reconstruction": recon,
            "reconstruction_pasted": torch.where(pix_mask, recon, x),
            "mask": pix_mask,
            "per_channel_mse": per_channel,
        }
        return {k: v.cpu().numpy() for k, v in out.items()}


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters: encoder (patch embed, cls, blocks, norm), decoder, total."""
    total = sum(p.numel() for p in model.parameters())
    enc_prefixes = ("patch_embed.", "cls_token", "blocks.", "norm.")
    encoder = sum(p.numel() for k, p in model.named_parameters() if k.startswith(enc_prefixes))
    return {"encoder": encoder, "decoder": total - encoder, "total": total}
