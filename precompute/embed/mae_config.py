"""CA-MAE architecture settings: :class:`MAEConfig` and the named model sizes.

Pure Python (no torch), so the command line can list the model sizes (``CONFIG_FACTORIES``) and a
checkpoint's config.json can be read and checked without loading the model. The model itself is
:class:`precompute.embed.mae.ChannelAgnosticMAE`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


class MAEConfigError(ValueError):
    """An MAEConfig that cannot build a model; the message names the field."""


@dataclass(frozen=True)
class MAEConfig:
    """Architecture and loss settings; saved as config.json beside the weights.

    Defaults are OpenPhenom's (ViT-S/16 at 256 px, its public decoder)."""

    img_size: int = 256
    patch_size: int = 16
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    qk_norm: bool = True
    init_values: float | None = 1e-4  # LayerScale start; None: no LayerScale
    max_in_chans: int = 11  # rows of the encoder's position table, in channels
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    decoder_channels: int = 6  # channels the decoder can paint (one channel token and decoder each)
    decoder_qkv_bias: bool = True
    decoder_norm_eps: float = 1e-5
    cross_attention_heads: int = 8
    mask_ratio: float = 0.75
    fourier_weight: float = 0.01
    norm_pix_loss: bool = False  # OpenPhenom: off (inputs are already instance-normalised)

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise MAEConfigError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        for dim, heads, label in (
            (self.embed_dim, self.num_heads, "embed_dim/num_heads"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder_embed_dim/decoder_num_heads"),
            (self.decoder_embed_dim, self.cross_attention_heads, "decoder_embed_dim/cross_attention_heads"),
        ):
            if dim % heads:
                raise MAEConfigError(f"{label}: {dim} is not divisible by {heads} heads")
            if dim % 4:
                raise MAEConfigError(f"{label}: {dim} must be a multiple of 4 (sin-cos embedding)")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise MAEConfigError(f"mask_ratio must be in [0, 1); got {self.mask_ratio}")
        if not 0.0 <= self.fourier_weight < 1.0:
            raise MAEConfigError(f"fourier_weight must be in [0, 1); got {self.fourier_weight}")
        for name in ("max_in_chans", "decoder_channels", "depth"):
            if getattr(self, name) < 1:
                raise MAEConfigError(f"{name} must be positive; got {getattr(self, name)}")

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
        img_size=img_size, patch_size=8, embed_dim=128, depth=4, num_heads=4,
        decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=4, decoder_norm_eps=1e-6,
    )
    return MAEConfig(**{**base, **overrides})


def mae_vit_small_patch16(img_size: int = 256, **overrides: Any) -> MAEConfig:
    """OpenPhenom: ViT-S/16 encoder (384 x 12, 6 heads), its public decoder (512 x 8, 16 heads, 6 channels)."""
    return MAEConfig(**{"img_size": img_size, **overrides})


def mae_vit_base_patch16(img_size: int = 256, **overrides: Any) -> MAEConfig:
    """ViT-B/16 encoder (768 x 12, 12 heads) with the MAE paper's decoder width (512 x 8)."""
    base = dict(img_size=img_size, embed_dim=768, num_heads=12)
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
