"""How embedders run in a process: torch's thread count, and each embedder built once per process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from precompute.process_cache import ProcessCache, file_stamp

from .registry import get_embedder, get_spec

_EMBEDDERS = ProcessCache()  # (name, build options, checkpoint stamp) -> the built embedder


def limit_torch_threads() -> None:
    """On CPU give torch half the cores: the other half decodes images for it. With all cores,
    OpenMP threads spin against the loader threads and a small model runs several times slower
    (measured 8x on this 2-core machine under load)."""
    import torch

    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


def set_torch_threads(name: str, threads: int) -> None:
    """Pin torch's thread count for a torch embedder (1 on Dask workers, where parallelism comes from
    worker processes); other embedders do not load torch, so nothing happens for them."""
    if get_spec(name).is_mae:
        import torch

        torch.set_num_threads(threads)


def cached_embedder(name: str, build: dict[str, Any]) -> Any:
    """The embedder ``get_embedder(name, **build)``, built once per process; a checkpoint rewritten
    at the same path is loaded again (its files' stamps are in the key)."""
    ckpt = build.get("checkpoint")
    stamp = file_stamp(Path(ckpt) / "model.safetensors", Path(ckpt) / "config.json") if ckpt else ()
    key = (name, json.dumps(build, sort_keys=True, default=str), stamp)

    def make() -> Any:
        if get_spec(name).is_mae:
            limit_torch_threads()
        return get_embedder(name, **build)

    return _EMBEDDERS.get(key, make)
