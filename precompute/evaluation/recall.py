"""Map benchmarks over aggregated embeddings: known-relationship recall and compound-gene retrieval.

``relationship_recall`` reproduces EFAAR's ``known_relationship_benchmark`` / ``compute_recall``
(efaar-benchmarking 1.0) block-wise: the genes x genes similarity matrix is never held. Recall
depends on the null only through two order statistics, found exactly either by storing the flat
upper triangle and one in-place ``np.partition`` (nulls up to 20M pairs), or, for bigger maps,
in one streaming pass that keeps only the values inside sample-estimated brackets (no 0.6 GB
array at 17,000 genes; falls back to the stored method if a bracket ever misses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from precompute.relate import l2_normalise


def gene_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows of an aggregate table that are gene-level entities: CRISPR knockouts pooled over
    guides (the paper's setting), or ORFs when the screen has no CRISPR."""
    kind = "crispr" if (table["perturbation_type"] == "crispr").any() else "orf"
    return (table["perturbation_type"] == kind).to_numpy() & (table["level"] == "pooled").to_numpy()


def _rank_bounds(m: int, pct: float) -> tuple[int, int]:
    """Integer cut-offs equivalent to EFAAR's compute_recall on a null of size m.

    EFAAR counts a query value q as recalled when searchsorted(null, q, 'right') / m <= left or
    searchsorted(null, q, 'left') / m >= right. With s the sorted null this is q < s[r_lo] or
    q > s[r_hi - 1], where r_lo is the largest r with r/m <= left and r_hi the smallest r with
    r/m >= right, both decided with the same float division the reference does.
    """
    left, right = pct / 100.0, (100.0 - pct) / 100.0  # (100-pct)/100 gives 0.95 exactly, as the reference's literal
    left, right = min(left, right), max(left, right)
    r_lo = min(m, int(np.floor(left * m)))
    while r_lo + 1 <= m and (r_lo + 1) / m <= left:
        r_lo += 1
    while r_lo > 0 and r_lo / m > left:
        r_lo -= 1
    r_hi = max(0, int(np.ceil(right * m)))
    while r_hi - 1 >= 0 and (r_hi - 1) / m >= right:
        r_hi -= 1
    while r_hi < m and r_hi / m < right:
        r_hi += 1
    return r_lo, r_hi


def _canonical_pairs(pairs: pd.DataFrame, index: dict[str, int]) -> pd.DataFrame:
    """EFAAR's filter_relationships + restriction to present genes, per source.

    Names are ordered lexicographically (A-B and B-A collapse), self pairs and duplicates dropped,
    pairs with a gene absent from the map removed. Adds row indices i < j into the map.
    """
    for col in ("entity1", "entity2"):
        if col not in pairs.columns:
            raise ValueError(f"relationship table lacks column {col!r}; present: {list(pairs.columns)}")
    df = pd.DataFrame(
        {
            "source": pairs["source"].astype(str) if "source" in pairs.columns else "pairs",
            "e1": pairs["entity1"].astype(str),
            "e2": pairs["entity2"].astype(str),
        }
    )
    a, b = df["e1"].to_numpy(dtype=object), df["e2"].to_numpy(dtype=object)
    swap = b < a
    df["e1"], df["e2"] = np.where(swap, b, a), np.where(swap, a, b)
    df = df[df["e1"] != df["e2"]].drop_duplicates(["source", "e1", "e2"])
    i, j = df["e1"].map(index), df["e2"].map(index)
    present = i.notna() & j.notna()
    df = df[present].copy()
    i, j = i[present].astype(np.int64).to_numpy(), j[present].astype(np.int64).to_numpy()
    df["i"], df["j"] = np.minimum(i, j), np.maximum(i, j)
    return df


_STORE_MAX = 20_000_000  # nulls up to this size are stored and partitioned; larger ones streamed


def _upper_blocks(xn: np.ndarray, qi: np.ndarray, qj: np.ndarray, qvals: np.ndarray, block_rows: int):
    """Yield (block_start, sims) with sims = xn[r0:r1] @ xn[r0:].T, i.e. rows r0..r1-1 against
    columns r0..n-1; entry [t, c] is the pair (r0+t, r0+c), upper triangle when c > t.

    Fills ``qvals`` for the annotated pairs (qi < qj, sorted) from the very same block, so each
    query value is bit-identical to its copy inside the null (matters when a pair sits exactly
    on a cut-off).
    """
    n = xn.shape[0]
    for r0 in range(0, n, block_rows):
        r1 = min(n, r0 + block_rows)
        sims = xn[r0:r1] @ xn[r0:].T
        lo, hi = np.searchsorted(qi, r0), np.searchsorted(qi, r1)
        qvals[lo:hi] = sims[qi[lo:hi] - r0, qj[lo:hi] - r0]
        yield r0, sims


def _order_stats_stored(xn, ranks, qi, qj, qvals, block_rows) -> dict[int, float]:
    """Exact order statistics: store the flat upper triangle, then one in-place np.partition."""
    n = xn.shape[0]
    null = np.empty(n * (n - 1) // 2, dtype=xn.dtype)
    pos = 0
    for _, sims in _upper_blocks(xn, qi, qj, qvals, block_rows):
        for t in range(sims.shape[0]):
            seg = sims[t, t + 1 :]
            null[pos : pos + seg.size] = seg
            pos += seg.size
    if ranks:
        null.partition(ranks)  # in place: no second copy
    return {r: null[r] for r in ranks}


def _order_stats_streaming(xn, ranks, qi, qj, qvals, block_rows, sample_size=250_000, seed=0, width=8.0):
    """Exact order statistics without storing the null (memory O(block_rows x n)).

    A random sample of pairs brackets each wanted order statistic r by values [a, b] wide enough
    (``width`` standard errors of the sample quantile) to contain it; one pass over the blocks then counts the null values
    below a and keeps those inside [a, b]; the r-th smallest is picked from the kept values.
    Returns None when a bracket missed (caller recomputes with the stored method), so the result
    is always exact.
    """
    n = xn.shape[0]
    m = n * (n - 1) // 2
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, sample_size)
    j = rng.integers(0, n - 1, sample_size)
    j += j >= i
    sample = np.concatenate(
        [np.einsum("ij,ij->i", xn[i[k : k + 65536]], xn[j[k : k + 65536]]) for k in range(0, sample_size, 65536)]
    )
    sample.sort()
    brackets = []
    for r in ranks:
        p = r / m
        half = width * np.sqrt(max(p * (1 - p), 1.0 / sample_size) / sample_size) + 2.0 / sample_size
        a = sample[int(np.floor((p - half) * sample_size))] if p - half > 0 else -np.inf
        b = sample[min(sample_size - 1, int(np.ceil((p + half) * sample_size)))] if p + half < 1 else np.inf
        brackets.append((a, b))
    below = [0] * len(ranks)
    kept: list[list[np.ndarray]] = [[] for _ in ranks]
    for _, sims in _upper_blocks(xn, qi, qj, qvals, block_rows):
        for t in range(sims.shape[0]):
            sims[t, : t + 1] = np.nan  # NaN fails every comparison: lower triangle and diagonal drop out
        for k, (a, b) in enumerate(brackets):
            below[k] += int(np.count_nonzero(sims < a))
            kept[k].append(sims[(sims >= a) & (sims <= b)])
    out = {}
    for k, r in enumerate(ranks):
        vals = np.concatenate(kept[k])
        if not below[k] <= r < below[k] + vals.size:
            return None
        out[r] = np.partition(vals, r - below[k])[r - below[k]]
    return out


def relationship_recall(
    gene_emb: np.ndarray,
    genes: Sequence[str],
    pairs: pd.DataFrame,
    *,
    pct: float = 5.0,
    block_rows: int = 2048,
    dtype: type = np.float32,
) -> pd.DataFrame:
    """Recall of known gene-gene relationships in the tails of the all-pairs cosine distribution.

    Args:
        gene_emb: (n_genes, d) one aggregated embedding per gene.
        genes: (n_genes,) unique gene labels of the rows.
        pairs: relationship table with ``entity1``, ``entity2`` and ``source`` columns (several
            sources at once; without ``source`` all pairs form one source named "pairs").
        pct: tail size in percent on each side (5 -> 5th/95th percentiles, random recall 0.10).
        block_rows: rows of the similarity matrix computed per matmul.
        dtype: arithmetic of the similarities: float32 (default) or float64 (bit-comparable
            with the reference fed float64 features; slower).

    Returns:
        DataFrame, one row per source in order of first appearance: ``source``, ``n_pairs``
        (after restricting to present genes, dropping self pairs and duplicate undirected pairs),
        ``recall``, ``lower_threshold``, ``upper_threshold``. A pair counts as recalled when its
        similarity is strictly below ``lower_threshold`` or strictly above ``upper_threshold``;
        these are the order statistics of the null (all n(n-1)/2 gene pairs, annotated pairs
        included) at which EFAAR's percentile ranks cross ``pct``/100 and 1-``pct``/100, which
        is exactly how the reference decides (it compares searchsorted ranks, it does not
        interpolate percentiles). Sources left with no pairs get recall NaN.
    """
    x = np.asarray(gene_emb)
    genes = [str(g) for g in genes]
    if x.ndim != 2 or x.shape[0] != len(genes):
        raise ValueError(f"gene_emb has shape {x.shape} but {len(genes)} gene labels were given")
    index: dict[str, int] = {}
    for k, g in enumerate(genes):
        if g in index:
            raise ValueError(f"gene label {g!r} appears twice (rows {index[g]} and {k}); aggregate first")
        index[g] = k
    n = len(genes)
    if n < 2:
        raise ValueError(f"need at least 2 genes for relationship recall, got {n}")
    xn = l2_normalise(x.astype(dtype, copy=False)).astype(dtype, copy=False)
    if not np.isfinite(xn).all():
        raise ValueError(
            f"gene_emb has NaN or inf values: first bad row is index {int(np.argmin(np.isfinite(xn).all(axis=1)))}"
        )

    rel = _canonical_pairs(pairs, index)
    uniq = rel[["i", "j"]].drop_duplicates().sort_values(["i", "j"]).to_numpy()
    qi, qj = uniq[:, 0], uniq[:, 1]
    qvals = np.empty(len(uniq), dtype=dtype)

    m = n * (n - 1) // 2
    r_lo, r_hi = _rank_bounds(m, pct)
    ranks = sorted({k for k in (r_lo, r_hi - 1) if 0 <= k < m})
    stats = None
    if m > _STORE_MAX:
        stats = _order_stats_streaming(xn, ranks, qi, qj, qvals, block_rows)
    if stats is None:  # small null, or the sampled brackets missed (then recompute exactly)
        stats = _order_stats_stored(xn, ranks, qi, qj, qvals, block_rows)
    lower = float(stats[r_lo]) if r_lo < m else np.inf
    upper = float(stats[r_hi - 1]) if r_hi >= 1 else -np.inf

    qkey = qi * n + qj  # ascending, as uniq is sorted by (i, j)
    rows = []
    for source in pd.unique(pairs["source"].astype(str)) if "source" in pairs.columns else ["pairs"]:
        sub = rel[rel["source"] == source]
        vals = qvals[np.searchsorted(qkey, sub["i"].to_numpy() * n + sub["j"].to_numpy())]
        recall = float(np.mean((vals < lower) | (vals > upper))) if len(vals) else np.nan
        rows.append(
            {
                "source": source,
                "n_pairs": len(sub),
                "recall": recall,
                "lower_threshold": lower,
                "upper_threshold": upper,
            }
        )
    return pd.DataFrame(rows, columns=["source", "n_pairs", "recall", "lower_threshold", "upper_threshold"])


def _normalise_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    cols = set(interactions.columns)
    if {"treatment", "gene_symbol", "nM_value"} <= cols:
        df = interactions.rename(columns={"treatment": "compound", "gene_symbol": "gene"})
    elif {"compound", "gene", "nM_value"} <= cols:
        df = interactions
    else:
        raise ValueError(
            "compound-gene table needs columns (treatment, gene_symbol, nM_value) as in "
            f"compound_gene_interactions.csv, or (compound, gene, nM_value); got {sorted(cols)}"
        )
    df = df[["compound", "gene", "nM_value"]].copy()
    df["nM_value"] = pd.to_numeric(df["nM_value"], errors="coerce")
    bad = df["nM_value"].isna().to_numpy()
    if bad.any():
        raise ValueError(f"compound-gene table: nM_value is not a number at row index {int(np.argmax(bad))}")
    df["compound"], df["gene"] = df["compound"].astype(str), df["gene"].astype(str)
    return df


def compound_gene_benchmark(
    compound_emb: np.ndarray,
    compounds: pd.DataFrame,
    gene_emb: np.ndarray,
    genes: Sequence[str],
    interactions: pd.DataFrame,
    *,
    active_nm: float = 1000.0,
    inactive_nm: float = 10000.0,
    per_dose: bool = False,
) -> pd.DataFrame:
    """Per-compound retrieval of its potent targets among genes by |cosine| (RxRx3-core benchmark).

    For each compound in both the map and the truth table: positives are its genes with potency
    <= ``active_nm``; genes in (``active_nm``, ``inactive_nm``] are left out; every other gene of
    the truth file that is in the map is a negative. Scores are |cosine(compound, gene)| at each
    concentration; the compound's score for a gene is the max over its concentrations.

    Args:
        compound_emb: (n_rows, d) compound embeddings, typically the ``level == 'dose'`` entities.
        compounds: (n_rows,) table with ``perturbation`` (compound name as in the truth file) and
            ``concentration_um`` (NaN allowed: a single undosed profile).
        gene_emb: (n_genes, d) gene embeddings; genes: their labels (gene symbols).
        interactions: compound_gene_interactions.csv as read (``treatment``, ``gene_symbol``,
            ``nM_value``) or with columns ``compound``, ``gene``, ``nM_value``.
        per_dose: also return one row per (compound, concentration).

    Returns:
        DataFrame with ``compound``, ``concentration_um`` (NaN = max over concentrations),
        ``n_concentrations``, ``n_positives``, ``n_negatives``, ``average_precision``
        (sklearn's step-wise AP), ``roc_auc``. Only compounds with >= 1 positive and >= 1
        negative present in the map are listed.

    Differences from EFAAR's compound_gene_benchmark (later versions of the repo): EFAAR samples
    max(2*n_pos, 20) negatives per compound from an unordered set (not reproducible across
    processes); here all eligible negatives are used, which is deterministic.
    """
    if "perturbation" not in compounds.columns:
        raise ValueError(f"compounds table needs a 'perturbation' column; got {list(compounds.columns)}")
    if len(compounds) != np.asarray(compound_emb).shape[0]:
        raise ValueError(f"compound_emb has {np.asarray(compound_emb).shape[0]} rows, compounds table {len(compounds)}")
    genes = [str(g) for g in genes]
    gene_pos = pd.Series(np.arange(len(genes)), index=genes)
    if gene_pos.index.duplicated().any():
        raise ValueError(f"duplicate gene label {gene_pos.index[gene_pos.index.duplicated()][0]!r}")
    truth = _normalise_interactions(interactions)
    truth = truth[truth["gene"].isin(gene_pos.index)]
    pool = np.array(sorted(set(truth["gene"])))
    sims = np.abs(
        l2_normalise(np.asarray(compound_emb, dtype=np.float64))
        @ l2_normalise(np.asarray(gene_emb, dtype=np.float64)[gene_pos[pool].to_numpy()]).T
    )  # (n_rows, n_pool)
    names = compounds["perturbation"].astype(str).to_numpy()
    conc = (
        pd.to_numeric(compounds["concentration_um"], errors="coerce").to_numpy(dtype=float)
        if "concentration_um" in compounds.columns
        else np.full(len(compounds), np.nan)
    )
    out = []
    for cpd, item in truth.groupby("compound", sort=True):
        rows = np.flatnonzero(names == cpd)
        if rows.size == 0:
            continue
        active = set(item.loc[item["nM_value"] <= active_nm, "gene"])
        grey = set(item.loc[(item["nM_value"] > active_nm) & (item["nM_value"] <= inactive_nm), "gene"]) - active
        keep = ~np.isin(pool, list(grey))
        labels = np.isin(pool[keep], list(active)).astype(int)
        if labels.sum() == 0 or labels.sum() == labels.size:
            continue
        order = rows[np.argsort(conc[rows], kind="stable")]
        levels = [(np.nan, sims[order][:, keep].max(axis=0))]
        if per_dose:
            levels += [(conc[r], sims[r, keep]) for r in order]
        for c, score in levels:
            out.append(
                {
                    "compound": cpd,
                    "concentration_um": c,
                    "n_concentrations": rows.size,
                    "n_positives": int(labels.sum()),
                    "n_negatives": int(labels.size - labels.sum()),
                    "average_precision": float(average_precision_score(labels, score)),
                    "roc_auc": float(roc_auc_score(labels, score)),
                }
            )
    cols = [
        "compound",
        "concentration_um",
        "n_concentrations",
        "n_positives",
        "n_negatives",
        "average_precision",
        "roc_auc",
    ]
    return pd.DataFrame(out, columns=cols)
