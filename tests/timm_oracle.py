"""timm as a test oracle, without torchvision.

timm imports torchvision at package import (data transforms, FrozenBatchNorm2d), and the
registry's torchvision wheels need a CUDA build of torch while this project runs the CPU build.
Only timm's VisionTransformer is used as a reference here, and it touches none of those names, so
placeholder ``torchvision`` modules are put into ``sys.modules`` before timm is imported. Any use
of a placeholder (calling it) raises, so a test can never silently run on a stub.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_SUBMODULES = (
    "torchvision",
    "torchvision.ops",
    "torchvision.ops.misc",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.transforms.v2",
    "torchvision.datasets",
    "torchvision.models",
    "torchvision.models.feature_extraction",
    "torchvision.utils",
    "torchvision.io",
)


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str) -> Any:  # InterpolationMode.BILINEAR and the like
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__name__}.{name}")


def _placeholder(name: str) -> type:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(f"torchvision stub: {name} was called; only timm's ViT is available in tests")

    return _PlaceholderMeta(name, (), {"__init__": refuse, "__call__": refuse})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{self.__name__}.{name}")


def install_torchvision_stub() -> None:
    """Register placeholder torchvision modules unless a real torchvision is importable."""
    if "torchvision" in sys.modules and not isinstance(sys.modules["torchvision"], _StubModule):
        return
    try:
        importlib.import_module("torchvision")
        return
    except Exception:  # noqa: BLE001 - absent, or a wheel that does not match this torch build
        sys.modules.pop("torchvision", None)
    for name in _SUBMODULES:
        mod = _StubModule(name)
        mod.__path__ = []  # a package, so "from torchvision.x import y" resolves
        mod.__version__ = "0.0+stub"
        sys.modules[name] = mod
    for name in _SUBMODULES[1:]:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, sys.modules[name])


def timm_vision_transformer() -> types.ModuleType:
    """timm.models.vision_transformer, imported behind the torchvision stub."""
    install_torchvision_stub()
    return importlib.import_module("timm.models.vision_transformer")


def reference_openphenom(*, img_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
                         max_in_chans: int, decoder_dim: int, decoder_depth: int, decoder_heads: int,
                         decoder_channels: int, decoder_eps: float):
    """An OpenPhenom-layout CA-MAE built from timm's own modules: timm's VisionTransformer
    (ParallelScalingBlock, qk_norm, no qkv bias, LayerScale 1e-4, class token, avg pool) with a
    channel-agnostic patch embedding and a per-channel position table, and a CAMAEDecoder made of
    timm's ``Block`` and ``Mlp`` the way the public mae_modules.py describes it. Its forward
    functions mirror the public ``predict`` and ``forward`` (constant_noise masking)."""
    import torch
    from torch import nn

    vit = timm_vision_transformer()
    L = (img_size // patch_size) ** 2

    def sincos(dim: int, channels: int) -> torch.Tensor:
        g = img_size // patch_size
        w = 1.0 / 10000.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
        hh, ww = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32), indexing="ij")
        a, b = torch.outer(hh.flatten(), w), torch.outer(ww.flatten(), w)
        table = torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], dim=1)[None].repeat(1, channels, 1)
        return torch.cat([torch.zeros(1, 1, dim), table], dim=1)

    class PerChannelPatchEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(1, embed_dim, patch_size, patch_size)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.stack([self.proj(x[:, i : i + 1]) for i in range(x.shape[1])], dim=2)
            return x.flatten(2).transpose(1, 2)

    class ChannelAgnosticTimmViT(vit.VisionTransformer):
        def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            return x + self.pos_embed[:, : x.shape[1]]

    backbone = ChannelAgnosticTimmViT(
        img_size=img_size, patch_size=patch_size, in_chans=1, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        num_classes=0, fc_norm=None, class_token=True, global_pool="avg", init_values=1e-4,
        block_fn=vit.ParallelScalingBlock, qkv_bias=False, qk_norm=True,
    )
    backbone.patch_embed = PerChannelPatchEmbed()
    backbone.pos_embed = nn.Parameter(sincos(embed_dim, max_in_chans), requires_grad=False)

    class CrossAttention(nn.Module):
        def __init__(self, dim: int, heads: int = 8) -> None:
            super().__init__()
            self.heads, self.scale = heads, (dim // heads) ** -0.5
            self.q = nn.Linear(dim, dim, bias=False)
            self.kv = nn.Linear(dim, dim * 2, bias=False)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
            B, N, C = x.shape
            q = self.q(x).reshape(B, N, self.heads, C // self.heads).permute(0, 2, 1, 3)
            kv = self.kv(ctx).reshape(B, ctx.shape[1], 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
            attn = ((q @ kv[0].transpose(-2, -1)) * self.scale).softmax(dim=-1)
            return self.proj((attn @ kv[1]).transpose(1, 2).reshape(B, N, C))

    def norm(d: int, **kw: Any) -> nn.LayerNorm:
        return nn.LayerNorm(d, eps=decoder_eps, **kw)

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
            self.placeholder = nn.Parameter(torch.zeros(1, 1, decoder_dim), requires_grad=False)
            self.modality_tokens = nn.ParameterList([nn.Parameter(torch.zeros(1, 1, decoder_dim)) for _ in range(decoder_channels)])
            self.cross_attention = CrossAttention(decoder_dim)
            self.mlp = vit.Mlp(decoder_dim, hidden_features=decoder_dim * 4)
            self.decoders = nn.ModuleList([
                nn.Sequential(*[vit.Block(decoder_dim, decoder_heads, 4.0, qkv_bias=True, norm_layer=norm)
                                for _ in range(decoder_depth)])
                for _ in range(decoder_channels)
            ])
            self.context_norm, self.query_norm, self.out_norm = norm(decoder_dim), norm(decoder_dim), norm(decoder_dim)
            self.pos_embeddings = nn.Parameter(sincos(decoder_dim, decoder_channels), requires_grad=False)

        def forward_masked(self, x: torch.Tensor, ind_restore: torch.Tensor) -> torch.Tensor:
            fill = self.mask_token.repeat(x.shape[0], ind_restore.shape[1] + 1 - x.shape[1], 1)
            x_ = torch.gather(torch.cat([x[:, 1:], fill], dim=1), 1, ind_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
            x = torch.cat([x[:, :1], x_], dim=1)
            codes = torch.cat([self.placeholder] + [t.repeat(1, L, 1) for t in self.modality_tokens], dim=1)
            x = x + self.pos_embeddings + codes
            rest, outs = x[:, 1:], []
            for m, dec in enumerate(self.decoders):
                x_m = self.cross_attention(self.query_norm(rest[:, m * L : (m + 1) * L]), self.context_norm(rest))
                outs.append(dec(x_m + self.mlp(self.out_norm(x_m))))
            return torch.cat([x[:, :1]] + outs, dim=1)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vit_backbone = backbone

    class Reference(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.decoder = Decoder()
            self.encoder_decoder_proj = nn.Linear(embed_dim, decoder_dim)
            self.decoder_pred = nn.Linear(decoder_dim, patch_size**2)

        @staticmethod
        def input_norm(pixels: torch.Tensor) -> torch.Tensor:
            return nn.functional.instance_norm(pixels.float() / 255.0)

        def predict(self, pixels: torch.Tensor, channelwise: bool = False) -> torch.Tensor:
            X = self.encoder.vit_backbone.forward_features(self.input_norm(pixels))
            if channelwise:
                n, _, d = X.shape
                return X[:, 1:].reshape(n, pixels.shape[1], L, d).mean(dim=2).reshape(n, -1)
            return X[:, 1:].mean(dim=1)

        def reconstruct(self, pixels: torch.Tensor, noise: torch.Tensor, mask_ratio: float = 0.75) -> torch.Tensor:
            v = self.encoder.vit_backbone
            x = v._pos_embed(v.patch_embed(self.input_norm(pixels)))
            tokens = x[:, 1:]
            keep = int(tokens.shape[1] * (1 - mask_ratio))
            shuffle = torch.argsort(noise, dim=1)
            restore = torch.argsort(shuffle, dim=1)
            kept = torch.gather(tokens, 1, shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, tokens.shape[2]))
            latent = v.norm(v.blocks(torch.cat([x[:, :1], kept], dim=1)))
            out = self.decoder.forward_masked(self.encoder_decoder_proj(latent), restore)
            return self.decoder_pred(out)[:, 1:]

    return Reference()
