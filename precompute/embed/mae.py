"""Channel-agnostic masked autoencoder (CA-MAE) for Cell Painting tiles, in plain torch.nn.

ONE implementation serves the shipped tiny demo model, models trained with ``train-mae`` and
Recursion's public OpenPhenom weights: the modules of :mod:`.openphenom` carry OpenPhenom's
parameter names and shapes (``encoder.vit_backbone.*``, ``decoder.*``, ``encoder_decoder_proj``,
``decoder_pred``), and :class:`.mae_config.MAEConfig` says how big each part is. The recipe (Kraus et al. 2024;
He et al. 2022), written here from the papers and the public code:

- Inputs in [0, 1] (uint8 / 255) are instance-normalised per image and channel; the loss is on those
  pixels.
- Every channel is patchified on its own by ONE shared ``Conv2d(1, D, p, stride=p)`` and every
  channel's patches get the SAME fixed 2-D sin-cos positions (the table is sized for
  ``max_in_chans`` channels; zero for the class token). The encoder never learns channel identity:
  any number of channels up to ``max_in_chans`` can be embedded.
- 75 % of all channel-patch tokens are masked at random; the decoder adds one learned token per
  channel (``decoder_channels``) so it knows which channel to paint.
- Loss = (1 - w) * MSE on masked patches + w * Fourier loss, w = 0.01. The Fourier loss is the L1
  distance between |FFT2| of predicted and true patches (orthonormal FFT, so the weight means the
  same for any patch size), also on masked patches only.
- A tile's embedding is OpenPhenom's ``predict``: the mean of a block's patch tokens (class token
  excluded, no final norm: with average pooling timm's ``norm`` is the identity), from the last block
  or any other (``block``); ``channelwise`` gives one mean per channel, concatenated (C x D).

Token order everywhere is channel-major: token ``c * L + l`` is patch ``l`` (row-major) of channel
``c``, with ``L = (H / p) * (W / p)``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from .mae_config import MAEConfig
from .openphenom import CAMAEDecoder, ChannelAgnosticViT, MAEEncoder


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


def resolve_blocks(depth: int, block: int | str | None) -> int:
    """'last' / None -> depth; an int (or digits) 1..depth -> itself; anything else raises."""
    if block is None or block == "last":
        return depth
    try:
        n = int(block)
    except (TypeError, ValueError):
        raise ValueError(f"block must be 1..{depth}, 'last' or 'best'; got {block!r}") from None
    if not 1 <= n <= depth:
        raise ValueError(f"block {n} does not exist: the encoder has blocks 1..{depth}")
    return n


class ChannelAgnosticMAE(nn.Module):
    """CA-MAE with OpenPhenom's parameter layout: encoder.vit_backbone, encoder_decoder_proj,
    decoder (CAMAEDecoder), decoder_pred."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        c, g = config, config.grid_size
        self.encoder = MAEEncoder(ChannelAgnosticViT(
            patch_size=c.patch_size, grid=g, dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads,
            mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias, qk_norm=c.qk_norm, init_values=c.init_values,
            max_in_chans=c.max_in_chans,
        ))
        self.decoder = CAMAEDecoder(
            channels=c.decoder_channels, grid=g, dim=c.decoder_embed_dim, depth=c.decoder_depth,
            num_heads=c.decoder_num_heads, mlp_ratio=c.mlp_ratio, qkv_bias=c.decoder_qkv_bias,
            eps=c.decoder_norm_eps, cross_heads=c.cross_attention_heads,
        )
        self.encoder_decoder_proj = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size**2)
        self._init_weights()

    @property
    def vit(self) -> ChannelAgnosticViT:
        return self.encoder.vit_backbone

    def _init_weights(self) -> None:
        # MAE recipe: xavier-uniform linears (patch conv treated as a linear), N(0, .02) tokens.
        # LayerScale gammas keep init_values; position tables stay fixed.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.vit.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.vit.patch_embed.proj.bias)
        for token in (self.vit.cls_token, self.decoder.mask_token, *self.decoder.modality_tokens):
            nn.init.normal_(token, std=0.02)

    def _grid(self, imgs: torch.Tensor) -> tuple[int, int]:
        p, s = self.config.patch_size, self.config.img_size
        h, w = imgs.shape[-2:]
        if (h, w) != (s, s):
            raise ValueError(f"image size {h}x{w} differs from the model's {s}x{s} input (its position table is fixed)")
        return h // p, w // p

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C * L, p * p), channel-major tokens, row-major pixels in a patch."""
        b, c, h, w = imgs.shape
        p = self.config.patch_size
        gh, gw = h // p, w // p
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
        self, x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep the int(N * (1 - r)) tokens (at least 1) of lowest ``noise`` per sample.

        x (B, N, D) -> kept (B, K, D), mask (B, N) with 1 = masked, ids_restore (B, N) that
        puts the [kept, masked] order back into token order. A CPU ``generator`` makes the mask
        reproducible on any device; ``noise`` (B, N) fixes it outright (OpenPhenom's constant_noise).
        """
        b, n, d = x.shape
        keep = max(1, int(n * (1.0 - mask_ratio)))
        if noise is None:
            noise = torch.rand(b, n, generator=generator) if generator is not None else torch.rand(b, n)
        ids_shuffle = torch.argsort(noise.to(x.device), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        kept = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised (B, C, H, W) -> latent (B, 1 + K, D), mask (B, C * L), ids_restore (B, C * L)."""
        self._grid(imgs)
        kept, mask, ids_restore = self.random_masking(self.vit.embed_tokens(imgs), mask_ratio, generator, noise)
        latent, _ = self.vit.run_blocks(self.vit.with_class_token(kept))
        return latent, mask, ids_restore  # vit.norm is the identity: no final norm

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + K, D) -> predicted normalised pixels (B, C * L, p * p)."""
        if ids_restore.shape[1] > self.config.decoder_channels * self.config.grid_size**2:
            raise ValueError(
                f"the decoder paints up to {self.config.decoder_channels} channels; got "
                f"{ids_restore.shape[1] // self.config.grid_size**2} (embedding needs no decoder)"
            )
        x = self.decoder(self.encoder_decoder_proj(latent), ids_restore)
        return self.decoder_pred(x)[:, 1:]

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
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(normed, pred, mask), pred, mask

    def embed_blocks(
        self, imgs: torch.Tensor, blocks: list[int], channelwise: bool = False
    ) -> dict[int, torch.Tensor]:
        """imgs (B, C, H, W) in [0, 1] -> {block: (B, D)} or, channelwise, {block: (B, C * D)}.

        The mean of each requested block's patch tokens (1-based block numbers), one forward pass
        for all of them; the forward stops after the deepest block asked for.
        """
        wanted = {resolve_blocks(self.config.depth, b) for b in blocks}
        normed, _, _ = instance_normalize(imgs)
        self._grid(normed)
        vit = self.vit
        x = vit.with_class_token(vit.embed_tokens(normed))
        out: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(vit.blocks[: max(wanted)], start=1):
            x = blk(x)
            if i in wanted:
                tokens = x[:, 1:]
                if channelwise:
                    b, c = imgs.shape[:2]
                    out[i] = tokens.reshape(b, c, -1, tokens.shape[-1]).mean(dim=2).reshape(b, -1)
                else:
                    out[i] = tokens.mean(dim=1)
        return out

    def embed(self, imgs: torch.Tensor, block: int | str | None = None, channelwise: bool = False) -> torch.Tensor:
        """imgs (B, C, H, W) in [0, 1], C <= max_in_chans -> (B, D), or (B, C * D) channelwise:
        OpenPhenom's ``predict`` (mean of the last block's patch tokens, no norm) at any block."""
        n = resolve_blocks(self.config.depth, block)
        return self.embed_blocks(imgs, [n], channelwise)[n]

    @torch.inference_mode()
    def reconstruct(
        self, imgs: np.ndarray | torch.Tensor, mask_ratio: float | None = None, seed: int = 0,
        noise: torch.Tensor | None = None,
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
            latent, mask, ids_restore = self.forward_encoder(normed, ratio, gen, noise)
            pred = self.forward_decoder(latent, ids_restore)
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
    """Trainable parameters: encoder (encoder.*), decoder (the rest), total; frozen position tables excluded."""
    params = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    total = sum(p.numel() for _, p in params)
    encoder = sum(p.numel() for k, p in params if k.startswith("encoder."))
    return {"encoder": encoder, "decoder": total - encoder, "total": total}
