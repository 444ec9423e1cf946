"""Two selections compared: what separates the wells of A from those of B, and which annotations
are enriched in each.

- Embedding directions: per dimension of the primary aligned embedding, the difference of means,
  Cohen's d (pooled SD) and Welch's t with its two-sided p, Benjamini-Hochberg q over dimensions;
  and the same along the top principal components of the A and B wells (fitted on a seeded
  sample when they are many: the caption says so with both counts).
- Named features (screens whose embedder has them: pixel statistics, CellProfiler profiles): the
  same statistics per feature, on the features as measured (wells of A vs wells of B).
- Annotations: per term (perturbation type, MOA, target, complex, pathway) the perturbations of A
  and of B that carry it, Fisher's exact test (two-sided), BH q over terms. The unit is the
  perturbation, not the well, so that a perturbation with many replicate wells does not count as
  many independent observations; a perturbation with wells in both A and B counts in both.

Pure functions over arrays and tables first; `compare_selections` (data object + two encoded
selections) wires them to the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, ttest_ind
from sklearn.decomposition import PCA

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable
from phenomix_dash.selection import selected_well_rows
from phenomix_dash.selection_stats import _bh, perturbation_key

MIN_WELLS = 2  # per side: a standard deviation needs two wells
N_PCS = 5
MAX_PCA_WELLS = 5000  # PCA of the A and B wells is fitted on at most this many (seeded sample)
MAX_TERMS = 2000  # annotation terms tested at most (the most frequent in A and B)
ANNOTATION_CATEGORIES = ("perturbation type", "MOA", "target", "complex", "pathway")


class CompareError(ValueError):
    """A and B cannot be compared (too few wells on a side); the message says why."""


def effect_sizes(x: np.ndarray, a_rows: np.ndarray, b_rows: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Per column of x: mean in A and B, difference (A - B), Cohen's d, Welch t, p and BH q.

    Sorted by |d|, largest first. A column constant in both sides has d and p missing (NaN)."""
    a = np.asarray(x[np.asarray(a_rows)], dtype=np.float64)
    b = np.asarray(x[np.asarray(b_rows)], dtype=np.float64)
    if len(a) < MIN_WELLS or len(b) < MIN_WELLS:
        raise CompareError(f"A has {len(a)} and B {len(b)} wells: each needs at least {MIN_WELLS}")
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    va, vb = a.var(axis=0, ddof=1), b.var(axis=0, ddof=1)
    pooled = np.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
    ok = pooled > 0  # a column constant on both sides has no effect size to measure
    d, t, p = (np.full(len(ma), np.nan) for _ in range(3))
    d[ok] = (ma[ok] - mb[ok]) / pooled[ok]
    if ok.any():
        t[ok], p[ok] = ttest_ind(a[:, ok], b[:, ok], axis=0, equal_var=False)
    out = pd.DataFrame({"name": list(names), "mean_a": ma, "mean_b": mb, "difference": ma - mb, "cohen_d": d,
                        "welch_t": t, "p": p, "q": _bh(p)})
    return out.iloc[np.argsort(-np.nan_to_num(np.abs(d), nan=-1.0), kind="stable")].reset_index(drop=True)


@dataclass(frozen=True)
class PcEffects:
    table: pd.DataFrame  # effect_sizes over the PCs, plus explained_variance
    fitted_on: int  # wells the PCA was fitted on
    of: int  # wells in A and B together


def pc_effects(x: np.ndarray, a_rows: np.ndarray, b_rows: np.ndarray, n_pcs: int = N_PCS,
               max_fit: int = MAX_PCA_WELLS, seed: int = 0) -> PcEffects:
    """Effect sizes of A vs B along the top principal components of the A and B wells together."""
    both = np.union1d(a_rows, b_rows)
    fit = both if both.size <= max_fit else np.sort(np.random.default_rng(seed).choice(both, max_fit, replace=False))
    k = int(min(n_pcs, x.shape[1], len(fit) - 1))
    if k < 1:
        raise CompareError("too few wells in A and B for principal components")
    pca = PCA(n_components=k, svd_solver="full" if len(fit) * x.shape[1] < 2_000_000 else "randomized",
              random_state=seed).fit(np.asarray(x[fit], dtype=np.float64))
    scores = np.full((len(x), k), np.nan)  # only A and B rows are filled (and read)
    scores[both] = pca.transform(np.asarray(x[both], dtype=np.float64))
    table = effect_sizes(scores, a_rows, b_rows, [f"PC{i + 1}" for i in range(k)])
    var = dict(zip([f"PC{i + 1}" for i in range(k)], pca.explained_variance_ratio_, strict=True))
    table["explained_variance"] = table["name"].map(var)
    return PcEffects(table, int(len(fit)), int(both.size))


def annotation_enrichment(terms: pd.DataFrame, a_keys: set[str], b_keys: set[str]) -> pd.DataFrame:
    """Fisher's exact test per annotation term, A's perturbations against B's.

    ``terms``: long table (key, category, term) mapping a perturbation key to its annotations.
    Returns category, term, in_a, n_a, in_b, n_b, odds_ratio, p, q and enriched_in ('A' or 'B'),
    most significant first; terms carried by no perturbation of A or B are not tested."""
    cols = ["category", "term", "in_a", "n_a", "in_b", "n_b", "odds_ratio", "p", "q", "enriched_in"]
    n_a, n_b = len(a_keys), len(b_keys)
    if not n_a or not n_b or terms.empty:
        return pd.DataFrame(columns=cols)
    t = terms[terms["key"].isin(a_keys | b_keys)].drop_duplicates()
    t = t.assign(in_a=t["key"].isin(a_keys).astype(int), in_b=t["key"].isin(b_keys).astype(int))
    g = t.groupby(["category", "term"], sort=False)[["in_a", "in_b"]].sum().reset_index()
    g = g.assign(_n=g["in_a"] + g["in_b"]).sort_values("_n", ascending=False).head(MAX_TERMS).drop(columns="_n")
    odds, p = np.empty(len(g)), np.empty(len(g))
    for i, (ka, kb) in enumerate(zip(g["in_a"].to_numpy(), g["in_b"].to_numpy(), strict=True)):
        res = fisher_exact([[ka, n_a - ka], [kb, n_b - kb]])
        odds[i], p[i] = res.statistic, res.pvalue
    g = g.assign(n_a=n_a, n_b=n_b, odds_ratio=odds, p=p, q=_bh(p))
    g["enriched_in"] = np.where(g["in_a"] / n_a >= g["in_b"] / n_b, "A", "B")
    return g[cols].sort_values(["p", "category", "term"]).reset_index(drop=True)


def annotation_terms(perts: pd.DataFrame, moa: pd.DataFrame | None = None, targets: pd.DataFrame | None = None,
                     genes: pd.DataFrame | None = None) -> pd.DataFrame:
    """(key, category, term) for every pooled perturbation of ``perts`` (columns perturbation_type,
    perturbation, gene): its type; a compound's MOAs and targets (``moa``: compound, moa;
    ``targets``: compound, gene); a gene's own symbol as target; complexes and pathways of the
    gene or of the compound's targets (``genes``: gene, complex[, pathway])."""
    p = perts.drop_duplicates(["perturbation_type", "perturbation"])
    key = perturbation_key(p).to_numpy()
    is_cmp = (p["perturbation_type"] == "compound").to_numpy()
    gene = p["gene"] if "gene" in p.columns else pd.Series(pd.NA, index=p.index)
    symbol = np.where(gene.notna() & (gene.astype(str) != ""), gene.astype(str), p["perturbation"].astype(str))
    parts = [pd.DataFrame({"key": key, "category": "perturbation type", "term": p["perturbation_type"].astype(str)})]
    cmp = pd.DataFrame({"key": key[is_cmp], "compound": p["perturbation"].astype(str).to_numpy()[is_cmp]})
    gen_types = p["perturbation_type"].isin(["crispr", "orf"]).to_numpy()
    target_of = pd.DataFrame({"key": key[gen_types], "gene": symbol[gen_types]})
    if moa is not None and {"compound", "moa"} <= set(moa.columns):
        m = cmp.merge(moa[["compound", "moa"]].astype(str), on="compound")
        parts.append(pd.DataFrame({"key": m["key"], "category": "MOA", "term": m["moa"]}))
    if targets is not None and {"compound", "gene"} <= set(targets.columns):
        target_of = pd.concat([target_of, cmp.merge(targets[["compound", "gene"]].astype(str), on="compound")[["key", "gene"]]])
    parts.append(pd.DataFrame({"key": target_of["key"], "category": "target", "term": target_of["gene"]}))
    if genes is not None and "gene" in genes.columns:
        for col, cat in (("complex", "complex"), ("pathway", "pathway")):
            if col in genes.columns:
                m = target_of.merge(genes[["gene", col]].dropna().astype(str), on="gene")
                parts.append(pd.DataFrame({"key": m["key"], "category": cat, "term": m[col]}))
    out = pd.concat(parts, ignore_index=True)
    return out[out["term"].notna() & (out["term"] != "") & (out["term"] != "nan")].drop_duplicates().reset_index(drop=True)


# -- on the store --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    n_a: int
    n_b: int
    n_overlap: int  # wells in both A and B (counted on both sides)
    directions: pd.DataFrame  # effect_sizes over the aligned embedding's dimensions
    pcs: PcEffects
    features: pd.DataFrame | None  # effect_sizes over named features; None when the screen has none
    feature_embedder: str | None
    annotations: pd.DataFrame


def _ground_truth(d: Any, name: str) -> pd.DataFrame | None:
    try:
        return d.ground_truth(name)
    except DataUnavailable:  # annotations are optional
        return None


@memoize(4, store=True)
def screen_annotation_terms(d: Any) -> pd.DataFrame:
    """`annotation_terms` of every perturbation of the screen, from its wells and annotation tables."""
    w = d.wells
    moa = _ground_truth(d, "compound_moa")
    if moa is None and "moa" in w.columns:  # profile imports carry the MOA on the wells
        moa = w.loc[w["moa"].notna(), ["perturbation", "moa"]].rename(columns={"perturbation": "compound"})
        moa = moa.assign(moa=moa["moa"].astype(str).str.split("|")).explode("moa").drop_duplicates()
    return annotation_terms(w, moa=moa, targets=_ground_truth(d, "compound_targets"), genes=_ground_truth(d, "genes"))


@memoize(4, store=True)
def _named_features(d: Any) -> tuple[str | None, list[str] | None]:
    """(embedder, feature names) of the screen's named features, (None, None) when it has none."""
    try:
        table = d.feature_drivers()[0]
    except DataUnavailable:
        return None, None
    return d.driver_embedder, table["feature"].astype(str).tolist()


def compare_selections(d: Any, sel_a: str, sel_b: str) -> Comparison:
    """Compare two stored selections (`selection.stored_selection` encodings) on the store."""
    a = selected_well_rows(d, "wells", sel_a)
    b = selected_well_rows(d, "wells", sel_b)
    x = d.well_embeddings("aligned")
    directions = effect_sizes(x, a, b, [f"dim {i}" for i in range(x.shape[1])])
    pcs = pc_effects(x, a, b)
    emb, names = _named_features(d)
    features = None
    if emb is not None:
        raw = d.well_embeddings("raw", emb)
        if raw.shape[1] == len(names):  # a stale features table must not mislabel columns
            features = effect_sizes(raw, a, b, names)
    key = perturbation_key(d.wells).to_numpy()
    annotations = annotation_enrichment(screen_annotation_terms(d), set(key[a]), set(key[b]))
    return Comparison(int(a.size), int(b.size), int(np.intersect1d(a, b).size), directions, pcs, features, emb,
                      annotations)
