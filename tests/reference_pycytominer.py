"""pycytominer's spherize as one normalises per batch (or plate): ``normalize`` once per batch.

Shared by the equality tests (tests/test_spherize_reference.py) and benchmarks/bench_align_scale.py
so both call the reference the same way. pycytominer 1.7.1 is in requirements-reference.txt;
a missing or different version is an ImportError naming the fix (:func:`load`), never a skip.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from reference_pins import import_pinned

PYCYTOMINER_VERSION = "1.7.1"


def _import_normalize():
    from pycytominer import normalize

    return normalize


def load():
    """pycytominer's ``normalize`` (the pinned version), or ImportError saying how to install it."""
    return import_pinned(_import_normalize, "pycytominer", PYCYTOMINER_VERSION, "the spherize reference")


def spherize_per_batch(x: np.ndarray, ctrl: np.ndarray, batches: np.ndarray, method: str = "ZCA-cor",
                       epsilon: float = 1e-6) -> np.ndarray:
    """(n, d) output of pycytominer ``normalize(method="spherize")`` fitted on each batch's controls."""
    normalize = load()
    cols = [f"f{i}" for i in range(x.shape[1])]
    df = pd.DataFrame(x, columns=cols)
    df.insert(0, "Metadata_batch", batches)
    df.insert(1, "Metadata_ctrl", np.where(ctrl, "ctrl", "trt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [normalize(profiles=part, features=cols, meta_features=["Metadata_batch", "Metadata_ctrl"],
                           samples="Metadata_ctrl == 'ctrl'", method="spherize", spherize_method=method,
                           spherize_epsilon=epsilon, spherize_center=True)
                 for _, part in df.groupby("Metadata_batch", sort=False)]
    out = pd.concat(parts).loc[df.index]
    # ZCA keeps the feature names; PCA names its columns PC1..PCd (principal axes, not features)
    return out[[c for c in out.columns if not str(c).startswith("Metadata_")]].to_numpy()
