"""Read (and, for tests and tools, write) checkpoint folders laid out as OpenPhenom is distributed.

Recursion publishes OpenPhenom (Hugging Face ``recursionpharma/OpenPhenom``) as a folder with
``config.json`` (a transformers ``PretrainedConfig``: ``model_type`` "MAE", hydra-style ``encoder`` /
``decoder`` blocks) and ``model.safetensors`` which, despite its name, is a ``torch.save`` of
``{"state_dict": ...}`` (see huggingface_mae.py's ``save_pretrained``). Real safetensors files are
accepted too. The state dict's names are those of :class:`precompute.embed.mae.ChannelAgnosticMAE`.

The public model's code builds its modules from hard-coded sizes, not from config.json, so sizes are
read from the weights' shapes; config.json supplies only what shapes cannot tell (decoder heads,
decoder LayerNorm epsilon, crop size), with the public code's values as defaults. Nothing here
downloads anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .mae_config import MAEConfig

if TYPE_CHECKING:  # torch stays unimported for callers that only read config.json (the dashboard)
    import torch

    from .mae import ChannelAgnosticMAE

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
VIT = "encoder.vit_backbone."
PUBLIC_DECODER_HEADS = 16  # huggingface_mae.py: CAMAEDecoder(num_heads=16)
PUBLIC_DECODER_EPS = 1e-5  # huggingface_mae.py: norm_layer=nn.LayerNorm (default eps)
PUBLIC_CROSS_HEADS = 8  # mae_modules.py: CrossAttention(embed_dim) keeps its default 8 heads


class OpenPhenomError(ValueError):
    """A folder that is not a readable OpenPhenom-layout checkpoint; the message names the file."""


def is_openphenom_config(data: dict[str, Any]) -> bool:
    """True for a transformers-style MAE config (OpenPhenom), False for Phenomix's flat MAEConfig."""
    return data.get("model_type") == "MAE" or "encoder" in data or "architectures" in data


def input_size(cfg: dict[str, Any]) -> int:
    """The crop size a checkpoint's config.json implies: Phenomix's ``img_size``; for the public layout
    ``phenomix.img_size``, else a positive ``crop_size``, else 256 (OpenPhenom's)."""
    if "img_size" in cfg:
        return int(cfg["img_size"])
    phenomix = cfg.get("phenomix") if isinstance(cfg.get("phenomix"), dict) else {}
    crop = cfg.get("crop_size") or -1
    return int(phenomix.get("img_size") or (crop if crop > 0 else 256))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights file -> state dict: real safetensors, or a torch-saved dict (``state_dict`` key or flat).

    torch.load runs with ``weights_only=True``: tensors and plain containers only, no pickled code.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise OpenPhenomError(f"checkpoint file missing: {path}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError):
        pass  # not a safetensors file: the public release is torch-saved under this name
    try:
        # Through a file object: given a path ending in .safetensors, torch.load hands it to safetensors.
        with open(path, "rb") as fh:
            obj = torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise OpenPhenomError(f"cannot read weights {path}: neither safetensors nor a torch-saved dict ({exc})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise OpenPhenomError(f"weights {path} hold no state dict of tensors")
    return obj


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def _shape(state: dict[str, torch.Tensor], key: str, where: Path) -> tuple[int, ...]:
    if key not in state:
        raise OpenPhenomError(f"weights in {where} lack {key!r}: not an OpenPhenom-layout CA-MAE")
    return tuple(state[key].shape)


def config_from_weights(state: dict[str, torch.Tensor], cfg: dict[str, Any], where: Path) -> MAEConfig:
    """Sizes from the weights' shapes; heads, epsilon and crop size from config.json or the public defaults."""
    dim = _shape(state, VIT + "cls_token", where)[-1]
    patch = _shape(state, VIT + "patch_embed.proj.weight", where)[-1]
    depth = _count(state, re.escape(VIT) + r"blocks\.(\d+)\.in_norm\.weight")
    hidden = _shape(state, VIT + "blocks.0.mlp_out_proj.weight", where)[1]
    qk_norm = VIT + "blocks.0.q_norm.weight" in state
    decoder = cfg.get("decoder") if isinstance(cfg.get("decoder"), dict) else {}
    phenomix = cfg.get("phenomix", {}) if isinstance(cfg.get("phenomix"), dict) else {}
    img_size = input_size(cfg)
    per_channel = (img_size // patch) ** 2
    n_pos = _shape(state, VIT + "pos_embed", where)[1] - 1
    if n_pos % per_channel:
        raise OpenPhenomError(f"{where}: pos_embed has {n_pos} patch rows, not a multiple of {per_channel} "
                              f"({img_size} px crops of {patch} px patches); set phenomix.img_size in {CONFIG}")
    dec_dim = _shape(state, "decoder.mask_token", where)[-1]
    eps = decoder.get("norm_layer", {}).get("eps") if isinstance(decoder.get("norm_layer"), dict) else None
    if qk_norm:
        heads = dim // _shape(state, VIT + "blocks.0.q_norm.weight", where)[0]
    else:
        heads = int(phenomix.get("num_heads") or cfg.get("encoder", {}).get("num_heads") or 6)
    return MAEConfig(
        img_size=img_size, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=hidden / dim,
        qkv_bias=VIT + "blocks.0.in_proj.bias" in state, qk_norm=qk_norm,
        init_values=1e-4 if VIT + "blocks.0.ls.gamma" in state else None,
        max_in_chans=n_pos // per_channel,
        decoder_embed_dim=dec_dim,
        decoder_depth=_count(state, r"decoder\.decoders\.0\.(\d+)\.norm1\.weight"),
        decoder_num_heads=int(phenomix.get("decoder_num_heads") or decoder.get("num_heads") or PUBLIC_DECODER_HEADS),
        decoder_channels=_count(state, r"decoder\.modality_tokens\.(\d+)$"),
        decoder_qkv_bias="decoder.decoders.0.0.attn.qkv.bias" in state,
        decoder_norm_eps=float(phenomix.get("decoder_norm_eps") or eps or PUBLIC_DECODER_EPS),
        cross_attention_heads=int(phenomix.get("cross_attention_heads") or PUBLIC_CROSS_HEADS),
        mask_ratio=float(cfg.get("mask_ratio", 0.75)),
        fourier_weight=float(cfg.get("fourier_loss_weight", 0.0)),
    )


def load_openphenom(root: Path, device: str | torch.device = "cpu") -> tuple[ChannelAgnosticMAE, MAEConfig, dict[str, Any]]:
    """OpenPhenom-layout folder -> (model in eval mode on device, config, meta).

    Raises :class:`OpenPhenomError` naming the file when config.json or the weights are missing or
    unreadable, or when a weight's name or shape does not fit (strict loading).
    """
    from .mae import ChannelAgnosticMAE

    root = Path(root)
    try:
        cfg = json.loads((root / CONFIG).read_text())
    except FileNotFoundError:
        raise OpenPhenomError(f"checkpoint file missing: {root / CONFIG}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpenPhenomError(f"checkpoint file is not valid JSON: {root / CONFIG} ({exc})") from None
    state = read_state_dict(root / WEIGHTS)
    config = config_from_weights(state, cfg, root / WEIGHTS)
    model = ChannelAgnosticMAE(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise OpenPhenomError(f"weights in {root / WEIGHTS} do not fit an OpenPhenom CA-MAE: {exc}") from None
    meta = {"format": "openphenom", "architecture": cfg.get("architectures", ["MAEModel"])[0], "source": str(root)}
    return model.to(device).eval(), config, meta


def openphenom_config_json(config: MAEConfig) -> dict[str, Any]:
    """A config.json in the public model's style for ``config`` (sizes the weights cannot tell included)."""
    return {
        "architectures": ["MAEModel"],
        "model_type": "MAE",
        "mask_ratio": config.mask_ratio,
        "crop_size": -1,
        "fourier_loss_weight": config.fourier_weight,
        "encoder": {"_target_": "mae_modules.MAEEncoder", "channel_agnostic": True, "max_in_chans": config.max_in_chans},
        "decoder": {
            "_target_": "mae_modules.CAMAEDecoder", "depth": config.decoder_depth, "embed_dim": config.decoder_embed_dim,
            "num_heads": config.decoder_num_heads, "num_modalities": config.decoder_channels,
            "tokens_per_modality": config.grid_size**2, "qkv_bias": config.decoder_qkv_bias,
            "norm_layer": {"_partial_": True, "_target_": "torch.nn.LayerNorm", "eps": config.decoder_norm_eps},
        },
        "phenomix": {"img_size": config.img_size, "cross_attention_heads": config.cross_attention_heads},
    }


def save_openphenom_layout(state: dict[str, torch.Tensor], config: MAEConfig, out: Path, *, torch_saved: bool = True) -> Path:
    """Write ``out``/{config.json, model.safetensors} as the public model is distributed
    (``torch_saved``: a torch.save of {"state_dict": ...}; else real safetensors)."""
    import torch
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG).write_text(json.dumps(openphenom_config_json(config), indent=2) + "\n")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if torch_saved:
        with open(out / WEIGHTS, "wb") as fh:
            torch.save({"state_dict": tensors}, fh)
    else:
        save_file(tensors, str(out / WEIGHTS))
    return out
