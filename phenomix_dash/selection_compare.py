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
from scipy.special import stdtr
from scipy.stats import hypergeom

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable
from phenomix_dash.selection import selected_well_rows
from phenomix_dash.selection_stats import _bh, _perturbation_index, _screen_totals, perturbation_key

MIN_WELLS = 2  # per side: a standard deviation needs two wells
N_PCS = 5
MAX_PCA_WELLS = 2000  # PCA of the A and B wells is fitted on at most this many (seeded sample)
MAX_TERMS = 500  # annotation terms tested at most (the most frequent in A and B; the panel says how many were not)
ANNOTATION_CATEGORIES = ("perturbation type", "MOA", "target", "complex", "pathway")


class CompareError(ValueError):
    """A and B cannot be compared (too few wells on a side); the message says why."""


def effect_sizes(x: np.ndarray, a_rows: np.ndarray, b_rows: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Per column of x: mean in A and B, difference (A - B), Cohen's d, Welch t, p and BH q.

    Sorted by |d|, largest first. A column constant in both sides has d and p missing (NaN)."""
    na, nb = len(a_rows), len(b_rows)
    if na < MIN_WELLS or nb < MIN_WELLS:
        raise CompareError(f"A has {na} and B {nb} wells: each needs at least {MIN_WELLS}")
    ma, va = _mean_var(x, a_rows)
    mb, vb = _mean_var(x, b_rows)
    pooled = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    ok = pooled > 0  # a column constant on both sides has no effect size to measure
    d, t, p = (np.full(len(ma), np.nan) for _ in range(3))
    d[ok] = (ma[ok] - mb[ok]) / pooled[ok]
    # Welch's t with Welch-Satterthwaite degrees of freedom (what scipy's ttest_ind(equal_var=False)
    # computes), from the moments above rather than a second pass over the wells.
    sa, sb = va / na, vb / nb
    se2 = sa + sb
    good = ok & (se2 > 0)
    t[good] = (ma[good] - mb[good]) / np.sqrt(se2[good])
    df = se2[good] ** 2 / (sa[good] ** 2 / (na - 1) + sb[good] ** 2 / (nb - 1))
    p[good] = 2 * stdtr(df, -np.abs(t[good]))
    out = pd.DataFrame({"name": list(names), "mean_a": ma, "mean_b": mb, "difference": ma - mb, "cohen_d": d,
                        "welch_t": t, "p": p, "q": _bh(p)})
    # Largest |d| first; numpy sorts NaN (an effect size that cannot be computed) last, and the table keeps it NaN.
    return out.iloc[np.argsort(-np.abs(d), kind="stable")].reset_index(drop=True)


def _mean_var(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and sample variances (float64) of x[rows]; centred before squaring, so float32
    input keeps its precision without a float64 copy of the rows."""
    sub = np.asarray(x[np.asarray(rows)])
    mean = sub.mean(axis=0, dtype=np.float64)
    centred = sub - mean.astype(sub.dtype)
    var = np.einsum("ij,ij->j", centred, centred, dtype=np.float64) / (len(sub) - 1) if sub.dtype.kind == "f" else \
        sub.var(axis=0, ddof=1, dtype=np.float64)
    return mean, var


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
    # The eigenvectors of the (dim x dim) covariance: exact, and cheap at any number of wells.
    sample = np.asarray(x[fit], dtype=np.float64)
    centre = sample.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(sample, rowvar=False).reshape(x.shape[1], x.shape[1]))
    order = np.argsort(evals)[::-1][:k]
    axes = evecs[:, order] * np.where(evecs[np.abs(evecs[:, order]).argmax(axis=0), order] < 0, -1, 1)  # fixed signs
    ratio = evals[order] / max(float(evals.clip(min=0).sum()), np.finfo(float).tiny)
    scores = np.full((len(x), k), np.nan)  # only A and B rows are filled (and read)
    scores[both] = (np.asarray(x[both], dtype=np.float64) - centre) @ axes
    table = effect_sizes(scores, a_rows, b_rows, [f"PC{i + 1}" for i in range(k)])
    var = dict(zip([f"PC{i + 1}" for i in range(k)], ratio, strict=True))
    table["explained_variance"] = table["name"].map(var)
    return PcEffects(table, int(len(fit)), int(both.size))


@dataclass(frozen=True)
class EncodedTerms:
    """`annotation_terms` as integers, so testing a selection is array indexing: ``pert`` (one entry
    per (perturbation, term) pair: the perturbation's row in ``keys``), ``term`` (index into
    ``labels``: category, term)."""

    keys: np.ndarray  # perturbation keys (object)
    pert: np.ndarray
    term: np.ndarray
    labels: pd.DataFrame


def encode_terms(terms: pd.DataFrame, keys: np.ndarray) -> EncodedTerms:
    """Encode a (key, category, term) table against the perturbation keys ``keys`` (unknown keys dropped)."""
    t = terms[["category", "term"]].assign(_p=pd.Index(keys).get_indexer(terms["key"]))
    t = t[t["_p"] >= 0].drop_duplicates()
    codes, labels = pd.MultiIndex.from_frame(t[["category", "term"]]).factorize()
    return EncodedTerms(np.asarray(keys, dtype=object), t["_p"].to_numpy(np.int64), np.asarray(codes, dtype=np.int64),
                        labels.to_frame(index=False, name=["category", "term"]))


def annotation_enrichment(terms: pd.DataFrame | EncodedTerms, a_keys: set[str] | np.ndarray,
                          b_keys: set[str] | np.ndarray) -> pd.DataFrame:
    """Fisher's exact test per annotation term, A's perturbations against B's (two-sided by
    doubling the smaller hypergeometric tail, vectorised over terms; the odds ratio is the sample one).

    ``terms``: long table (key, category, term) mapping a perturbation key to its annotations (or
    its `encode_terms`; then A and B may be boolean masks over its keys). Returns category, term,
    in_a, n_a, in_b, n_b, odds_ratio, p, q and enriched_in ('A' or 'B'), most significant first;
    terms carried by no perturbation of A or B are not tested, nor those rarer than the MAX_TERMS
    most frequent (their number is in ``attrs['untested']``)."""
    cols = ["category", "term", "in_a", "n_a", "in_b", "n_b", "odds_ratio", "p", "q", "enriched_in"]
    if not isinstance(terms, EncodedTerms):
        terms = encode_terms(terms, np.array(sorted(set(terms["key"]) | set(a_keys) | set(b_keys)), dtype=object))
    mask_a, mask_b = (m if isinstance(m, np.ndarray) and m.dtype == bool else pd.Index(terms.keys).isin(list(m))
                      for m in (a_keys, b_keys))
    n_a, n_b = int(mask_a.sum()), int(mask_b.sum())
    if not n_a or not n_b or not len(terms.labels):
        return pd.DataFrame(columns=cols)
    n_lab = len(terms.labels)
    in_a = np.bincount(terms.term, weights=mask_a[terms.pert], minlength=n_lab).astype(np.int64)
    in_b = np.bincount(terms.term, weights=mask_b[terms.pert], minlength=n_lab).astype(np.int64)
    present = np.flatnonzero(in_a + in_b)
    chosen = present[np.argsort(-(in_a + in_b)[present], kind="stable")[:MAX_TERMS]]
    ka, kb = in_a[chosen], in_b[chosen]
    # Given the margins, A's count of the term is hypergeometric: population n_a + n_b, ka + kb carry it, n_a drawn.
    upper = hypergeom.sf(ka - 1, n_a + n_b, ka + kb, n_a)
    lower = hypergeom.cdf(ka, n_a + n_b, ka + kb, n_a)
    p = np.minimum(1.0, 2 * np.minimum(upper, lower))
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (ka * (n_b - kb)) / ((n_a - ka) * kb)
    g = terms.labels.iloc[chosen].reset_index(drop=True).assign(in_a=ka, n_a=n_a, in_b=kb, n_b=n_b, odds_ratio=odds,
                                                                 p=p, q=_bh(p))
    g["enriched_in"] = np.where(ka / n_a >= kb / n_b, "A", "B")
    out = g[cols].sort_values(["p", "category", "term"]).reset_index(drop=True)
    out.attrs["untested"] = int(present.size - chosen.size)  # carried by A or B, rarer than the MAX_TERMS tested
    return out


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
def _encoded_terms(d: Any) -> EncodedTerms:
    """The screen's annotation terms encoded against its perturbation index (once per store)."""
    return encode_terms(screen_annotation_terms(d), _perturbation_index(d)[1]["pert_id"].to_numpy())


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
    # One gather of A's and B's rows from the memory map, shared by the dimensions and the PCs
    # (a well in both A and B appears on each side, as it is counted in each).
    ab = np.concatenate([np.asarray(x[a]), np.asarray(x[b])])
    ra, rb = np.arange(a.size), a.size + np.arange(b.size)
    directions = effect_sizes(ab, ra, rb, [f"dim {i}" for i in range(x.shape[1])])
    pcs = pc_effects(ab, ra, rb)
    emb, names = _named_features(d)
    features = None
    if emb is not None:
        raw = d.well_embeddings("raw", emb)
        if raw.shape[1] == len(names):  # a stale features table must not mislabel columns
            features = effect_sizes(raw, a, b, names)
    codes, ent = _perturbation_index(d)
    mask_a, mask_b = (np.bincount(codes[r], minlength=len(ent)) > 0 for r in (a, b))
    annotations = annotation_enrichment(_encoded_terms(d), mask_a, mask_b)
    return Comparison(int(a.size), int(b.size), int(np.intersect1d(a, b).size), directions, pcs, features, emb,
                      annotations)


def warm_up(d: Any) -> None:
    """Build the per-store tables the selection callbacks share (perturbation index, screen counts,
    encoded annotations, named features) at server start, so that a user's first selection pays
    only for itself (~2 s of the first call at 100,000 wells otherwise)."""
    _screen_totals(d)
    _encoded_terms(d)
    _named_features(d)
