"""The modules of an OpenPhenom-layout CA-MAE, in plain torch (no timm at run time).

Parameter names and shapes are those of Recursion's public OpenPhenom model
(recursionpharma/maes_microscopy: a timm ``VisionTransformer`` ViT-S/16 wrapped as
``encoder.vit_backbone``, a ``CAMAEDecoder`` as ``decoder``), so its state dict loads here with
``strict=True``. The arithmetic follows timm 1.0's ``ParallelScalingBlock`` / ``Block`` and the
public CA-MAE decoder; tests check both against timm itself (tests/timm_oracle.py). Written here
from those designs, not copied:

- Encoder block = timm ``ParallelScalingBlock`` (Dehghani et al. 2023, ViT-22B): ONE LayerNorm,
  ONE input projection producing [MLP hidden | q | k | v] (no qkv bias; the MLP keeps a bias of
  its own, ``mlp_bias``), LayerNorm on q and k per head, attention and MLP run in parallel, their
  two output projections summed, scaled by one LayerScale ``ls.gamma`` and added to the residual.
- Average pooling means timm puts the final LayerNorm after the pool (``fc_norm``) and ``norm``
  is the identity, so block outputs are never normalised before OpenPhenom's ``predict`` averages
  them. ``fc_norm`` is kept (it is in the checkpoint) and used by :meth:`ChannelAgnosticViT.pooled`.
- Decoder: mask tokens fill the masked positions, positions and one learned token per channel are
  added, then every channel's tokens attend (cross-attention, no residual) to ALL channels' tokens,
  pass a residual MLP, and a small stack of pre-norm blocks of their own.

LayerNorm epsilons: timm's ViT uses 1e-6; the decoder's is a config value because the public
model's code and config disagree (``nn.LayerNorm`` 1e-5 in huggingface_mae.py, 1e-6 in config).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_EPS = 1e-6


def sincos_table(dim: int, grid: int, channels: int, class_token: bool = True) -> torch.Tensor:
    """(1, [1 +] channels * grid^2, dim): the same 2-D sin-cos code for every channel's patches,
    zeros for the class token. Half the width codes the row, half the column, as sin and cos of
    position times 1 / 10000^(i / (dim / 4)) (OpenPhenom's layout: sin(y), cos(y), sin(x), cos(x))."""
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    pos = torch.arange(grid, dtype=torch.float32)
    ys, xs = torch.meshgrid(pos, pos, indexing="ij")
    ang_y, ang_x = torch.outer(ys.flatten(), omega), torch.outer(xs.flatten(), omega)
    table = torch.cat([ang_y.sin(), ang_y.cos(), ang_x.sin(), ang_x.cos()], dim=1).repeat(channels, 1)
    if class_token:
        table = torch.cat([torch.zeros(1, dim), table], dim=0)
    return table[None]


class LayerScale(nn.Module):
    """Per-feature learned scale on a residual branch (Touvron et al. 2021, CaiT)."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class ParallelScalingBlock(nn.Module):
    """x + ls(attn_out(attn(q, k, v)) + mlp_out(gelu(h + mlp_bias))), [h | q | k | v] = in_proj(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, qk_norm: bool,
                 init_values: float | None) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        hidden = int(dim * mlp_ratio)
        self.split = [hidden, dim, dim, dim]
        self.in_norm = nn.LayerNorm(dim, eps=ENCODER_EPS)
        self.in_proj = nn.Linear(dim, hidden + 3 * dim, bias=qkv_bias)
        # With a biased in_proj the MLP's bias lives there; without, the MLP keeps its own.
        self.mlp_bias = None if qkv_bias else nn.Parameter(torch.zeros(hidden))
        self.q_norm = nn.LayerNorm(self.head_dim, eps=ENCODER_EPS) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=ENCODER_EPS) if qk_norm else nn.Identity()
        self.attn_out_proj = nn.Linear(dim, dim)
        self.mlp_out_proj = nn.Linear(hidden, dim)
        self.ls = LayerScale(dim, init_values) if init_values is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h, q, k, v = torch.split(self.in_proj(self.in_norm(x)), self.split, dim=-1)
        if self.mlp_bias is not None:
            h = h + self.mlp_bias
        heads = (b, n, self.num_heads, self.head_dim)
        q = self.q_norm(q.reshape(heads)).transpose(1, 2)
        k = self.k_norm(k.reshape(heads)).transpose(1, 2)
        attn = F.scaled_dot_product_attention(q, k, v.reshape(heads).transpose(1, 2))
        y = self.attn_out_proj(attn.transpose(1, 2).reshape(b, n, d)) + self.mlp_out_proj(F.gelu(h))
        return x + self.ls(y)


class PatchEmbed(nn.Module):
    """One Conv2d(1, D, p, p) shared by all channels -> (B, C * L, D) tokens, channel-major."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        b, c, h, w = imgs.shape
        x = self.proj(imgs.reshape(b * c, 1, h, w))  # (B*C, D, gh, gw)
        return x.flatten(2).transpose(1, 2).reshape(b, -1, x.shape[1])


class ChannelAgnosticViT(nn.Module):
    """timm's VisionTransformer as OpenPhenom configures it: class token, fixed positions,
    ParallelScalingBlocks, ``norm`` = identity, ``fc_norm`` after average pooling, no head."""

    def __init__(self, *, patch_size: int, grid: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 qkv_bias: bool, qk_norm: bool, init_values: float | None, max_in_chans: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # A frozen Parameter, not a buffer, because that is how the public checkpoint stores it.
        self.pos_embed = nn.Parameter(sincos_table(dim, grid, max_in_chans), requires_grad=False)
        self.blocks = nn.Sequential(*(
            ParallelScalingBlock(dim, num_heads, mlp_ratio, qkv_bias, qk_norm, init_values) for _ in range(depth)
        ))
        self.fc_norm = nn.LayerNorm(dim, eps=ENCODER_EPS)
        self.tokens_per_channel = grid * grid

    @property
    def max_in_chans(self) -> int:
        return (self.pos_embed.shape[1] - 1) // self.tokens_per_channel

    def embed_tokens(self, imgs: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, H, W) -> (B, C * L, D) patch tokens plus positions (no class token)."""
        x = self.patch_embed(imgs)
        if x.shape[1] > self.pos_embed.shape[1] - 1:
            raise ValueError(
                f"{imgs.shape[1]} channels of {imgs.shape[-2]}x{imgs.shape[-1]} px need {x.shape[1]} positions; "
                f"the model has {self.pos_embed.shape[1] - 1} (at most {self.max_in_chans} channels at its input size)"
            )
        return x + self.pos_embed[:, 1 : 1 + x.shape[1]].to(x.dtype)

    def with_class_token(self, tokens: torch.Tensor) -> torch.Tensor:
        cls = (self.cls_token + self.pos_embed[:, :1]).to(tokens.dtype)
        return torch.cat([cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)

    def run_blocks(self, x: torch.Tensor, keep: set[int] | None = None) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(B, 1 + N, D) -> (last block's output, {block number (1-based): output} for ``keep``)."""
        kept: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks, start=1):
            x = blk(x)
            if keep and i in keep:
                kept[i] = x
        return x, kept

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """timm's forward_head for global_pool='avg', num_classes=0: fc_norm(mean of patch tokens)."""
        return self.fc_norm(x[:, 1:].mean(dim=1))


class MAEEncoder(nn.Module):
    """Holds the ViT under the public name ``vit_backbone``."""

    def __init__(self, vit_backbone: ChannelAgnosticViT) -> None:
        super().__init__()
        self.vit_backbone = vit_backbone


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """timm's pre-norm ``Block`` without LayerScale: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    """Queries from one channel's tokens, keys and values from all channels' tokens."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(context).reshape(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class CAMAEDecoder(nn.Module):
    """Per-channel decoding: positions + channel token, cross-attention to every channel's tokens,
    a residual MLP, then the channel's own stack of blocks. Channel c uses decoder c and token c,
    so reconstructions mean something only for channels in the order the model was trained on."""

    def __init__(self, *, channels: int, grid: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 qkv_bias: bool, eps: float, cross_heads: int) -> None:
        super().__init__()
        self.tokens_per_modality = grid * grid
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.placeholder = nn.Parameter(torch.zeros(1, 1, dim), requires_grad=False)  # class token's slot
        self.modality_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, dim)) for _ in range(channels))
        self.cross_attention = CrossAttention(dim, cross_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.decoders = nn.ModuleList(
            nn.Sequential(*(Block(dim, num_heads, mlp_ratio, qkv_bias, eps) for _ in range(depth)))
            for _ in range(channels)
        )
        self.context_norm = nn.LayerNorm(dim, eps=eps)
        self.query_norm = nn.LayerNorm(dim, eps=eps)
        self.out_norm = nn.LayerNorm(dim, eps=eps)
        self.pos_embeddings = nn.Parameter(sincos_table(dim, grid, channels), requires_grad=False)

    @property
    def channels(self) -> int:
        return len(self.modality_tokens)

    def forward(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """x (B, 1 + K, Dd) kept tokens with class token first; ids_restore (B, C * L) -> (B, 1 + C * L, Dd)."""
        b, n = ids_restore.shape
        L = self.tokens_per_modality
        c = n // L
        if c * L != n or c > self.channels:
            raise ValueError(f"the decoder paints up to {self.channels} channels of {L} patches; got {n} patch tokens")
        fill = self.mask_token.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:], fill], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        channel_codes = torch.cat([self.placeholder] + [t.expand(-1, L, -1) for t in self.modality_tokens[:c]], dim=1)
        x = torch.cat([x[:, :1], tokens], dim=1) + (self.pos_embeddings[:, : 1 + n] + channel_codes).to(x.dtype)
        context = self.context_norm(x[:, 1:])
        painted = []
        for m in range(c):
            x_m = self.cross_attention(self.query_norm(x[:, 1 + m * L : 1 + (m + 1) * L]), context)
            x_m = x_m + self.mlp(self.out_norm(x_m))
            painted.append(self.decoders[m](x_m))
        return torch.cat([x[:, :1]] + painted, dim=1)
