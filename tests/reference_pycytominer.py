"""pycytominer's spherize as one normalises per batch (or plate): ``normalize`` once per batch.

Shared by the equality tests (tests/test_spherize_reference.py) and benchmarks/bench_align_scale.py
so both call the reference the same way. pycytominer 1.7.1 is in requirements-reference.txt.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def spherize_per_batch(x: np.ndarray, ctrl: np.ndarray, batches: np.ndarray, method: str = "ZCA-cor",
                       epsilon: float = 1e-6) -> np.ndarray:
    """(n, d) output of pycytominer ``normalize(method="spherize")`` fitted on each batch's controls."""
    from pycytominer import normalize

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
    return pd.concat(parts).loc[df.index, cols].to_numpy()
