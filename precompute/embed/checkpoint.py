"""Save and load CA-MAE checkpoints: a folder with model.safetensors, config.json, training.json.

A checkpoint is written into a temporary sibling folder and renamed into place, so a crash never
leaves a half-written checkpoint under the final name. training.json records the SHA-256 of the
weights, and loading checks it, so a truncated or altered weights file is caught by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .mae import ChannelAgnosticMAE, resolve_device
from .mae_config import MAEConfig
from .openphenom_io import OpenPhenomError, is_openphenom_config, load_openphenom

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINING = "training.json"
FORMAT = "phenomix-ca-mae/2"  # /2: OpenPhenom parameter layout (/1 checkpoints do not load)


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or corrupt; the message names the file."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # torch.compile wraps the model; save the original's names so loading needs no compile.
    base = getattr(model, "_orig_mod", model)
    return {k: v.detach().to("cpu").contiguous() for k, v in base.state_dict().items()}


def save_checkpoint(
    model: torch.nn.Module,
    config: MAEConfig,
    out_dir: str | os.PathLike,
    *,
    history: dict[str, Any] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``out_dir``/{model.safetensors, config.json, training.json} atomically; return out_dir.

    ``history`` is what :func:`precompute.embed.train.train_mae` returns (curve of step, loss, lr,
    tiles/s; final loss); ``extra_meta`` carries e.g. the command line and a data description.
    An existing checkpoint at ``out_dir`` is replaced only after the new one is complete.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_file(_state_dict(model), str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        meta = {
            "format": FORMAT,
            "architecture": "ChannelAgnosticMAE",
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch_version": torch.__version__,
            "weights_sha256": _sha256(tmp / WEIGHTS),
            **(history or {}),
            **(extra_meta or {}),
        }
        (tmp / TRAINING).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file missing: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file is not valid JSON: {path} ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint file should hold a JSON object: {path}")
    return data


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ChannelAgnosticMAE, MAEConfig, dict[str, Any]]:
    """Checkpoint folder (or its model.safetensors) -> (model in eval mode on device, config, meta).

    Takes Phenomix's own folders and folders laid out as OpenPhenom is distributed (a config.json
    with ``model_type`` "MAE"; see :mod:`.openphenom_io`).

    ``meta`` is training.json (empty when the file is absent, e.g. a hand-made checkpoint).
    Raises :class:`CheckpointError` naming the file for a missing folder, missing or invalid
    config, missing, corrupt or altered weights, or weights that do not fit the config.
    """
    root = Path(path)
    if root.name == WEIGHTS:
        root = root.parent
    if not root.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {root}")
    raw = _read_json(root / CONFIG)
    if is_openphenom_config(raw):
        try:
            model, config, meta = load_openphenom(root, resolve_device(device))
        except OpenPhenomError as exc:
            raise CheckpointError(str(exc)) from None
        return model, config, meta
    try:
        config = MAEConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        hint = " (a phenomix-ca-mae/1 checkpoint: retrain it with train-mae)" if "max_channels" in raw else ""
        raise CheckpointError(f"bad model config in {root / CONFIG}: {exc}{hint}") from None
    meta = _read_json(root / TRAINING) if (root / TRAINING).exists() else {}
    weights = root / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"checkpoint file missing: {weights}")
    expected = meta.get("weights_sha256")
    if expected and _sha256(weights) != expected:
        raise CheckpointError(
            f"checkpoint weights are corrupt or were changed: {weights} "
            f"(SHA-256 differs from the one in {root / TRAINING})"
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot read checkpoint weights {weights}: {exc}") from None
    model = ChannelAgnosticMAE(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {weights} do not fit {root / CONFIG}: {exc}") from None
    return model.to(resolve_device(device)).eval(), config, meta
