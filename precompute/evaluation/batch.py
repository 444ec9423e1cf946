"""Batch-effect metrics: how well do embeddings still encode a technical label (batch, plate, row...)?

After a good alignment, batch classification accuracy should fall towards chance and the
silhouette by batch towards 0, while replicate retrieval holds or rises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def batch_metrics(
    emb: np.ndarray,
    labels: Sequence | np.ndarray,
    *,
    max_samples: int = 5000,
    seed: int = 0,
    n_splits: int = 5,
    classifier: str = "logistic",
) -> dict[str, float]:
    """Cross-validated predictability of ``labels`` from ``emb`` plus cosine silhouette.

    Args:
        emb: (n, d) embeddings.
        labels: (n,) technical labels (batch, plate, plate row, ...).
        max_samples: stratified subsample size (keeps the cost fixed on big screens).
        seed: makes the subsample and the folds deterministic.
        n_splits: stratified folds (reduced to the smallest class size if needed, minimum 2;
            classes with a single sample after subsampling are dropped).
        classifier: "logistic" (standardised features, multinomial logistic regression) or
            "knn" (10 nearest neighbours, cosine).

    Returns:
        dict with ``accuracy`` (mean CV accuracy), ``chance`` (majority-class fraction of the
        evaluated samples), ``silhouette`` (cosine silhouette by label, -1..1), ``n_samples``,
        ``n_labels``. Metrics are NaN when fewer than two labels remain.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(emb)  # float64 only after subsampling: a full copy is 3 GB at 10^6 wells
    y = pd.factorize(pd.Series(np.asarray(labels)).astype(str))[0]
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"emb has shape {x.shape} but {y.shape[0]} labels were given")
    if not np.isfinite(x).all():
        raise ValueError(
            f"emb has NaN or inf values: first bad row is index {int(np.argmin(np.isfinite(x).all(axis=1)))}"
        )
    nan_result = {"accuracy": np.nan, "chance": np.nan, "silhouette": np.nan, "n_samples": 0, "n_labels": 0}

    if x.shape[0] > max_samples:
        counts = np.bincount(y)
        if (counts >= 2).sum() >= 2 and len(counts) <= max_samples:
            # stratified subsample; singleton classes cannot be stratified, drop them first
            ok = counts[y] >= 2
            x, y = x[ok], y[ok]
            if x.shape[0] > max_samples:
                x, _, y, _ = train_test_split(x, y, train_size=max_samples, stratify=y, random_state=seed)
        else:
            take = np.random.default_rng(seed).choice(x.shape[0], max_samples, replace=False)
            x, y = x[take], y[take]
    counts = np.bincount(y)
    ok = counts[y] >= 2
    x, y = np.asarray(x[ok], dtype=np.float64), pd.factorize(y[ok])[0]
    if y.size == 0 or y.max() < 1:
        return nan_result
    counts = np.bincount(y)
    folds = int(max(2, min(n_splits, counts.min())))
    if classifier == "logistic":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    elif classifier == "knn":
        model = KNeighborsClassifier(n_neighbors=min(10, y.size // 2), metric="cosine")
    else:
        raise ValueError(f"classifier must be 'logistic' or 'knn', got {classifier!r}")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    acc = float(np.mean(cross_val_score(model, x, y, cv=cv, n_jobs=1)))
    sil = float(silhouette_score(x, y, metric="cosine"))
    return {
        "accuracy": acc,
        "chance": float(counts.max() / counts.sum()),
        "silhouette": sil,
        "n_samples": int(y.size),
        "n_labels": int(counts.size),
    }
