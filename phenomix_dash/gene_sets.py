"""Gene and compound sets: chosen from the screen's annotations or pasted as a list of names,
resolved to perturbations, and scored (how tightly the members cluster, how many are active).

The science here is pure (tables and arrays in, arrays and tables out) and cheap enough to run on
demand: a set is resolved and scored when it is chosen, never precomputed. A set travels in the URL
as ``set=ann:<source>:<name>`` (an annotation set) or ``set=list:<name>,<name>,...`` (a pasted
list, kept as typed so that a reloaded link reports the same unknown names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

GENETIC_TYPES = ("crispr", "orf")
CONTROL_TYPES = ("negative_control", "positive_control")
# A pasted list lives in the URL, whose query string the dashboard caps (security.MAX_QUERY_LEN):
# the list must fit with the page's own parameters beside it.
MAX_LIST_NAMES = 200
MAX_ENCODED_LEN = 3000
N_NULL = 1000  # random sets per null: p resolves down to 1/1001

# Annotation sources a set can come from, in the chooser's order: source -> label.
SOURCES: dict[str, str] = {
    "complex": "complex",
    "pathway": "pathway",
    "moa": "mechanism of action",
    "targets": "a compound and its targets",
}
_SPLIT = re.compile(r"[\s,;]+")
_NAME = re.compile(r"^[A-Za-z0-9_.:@+\-()/\[\]]{1,128}$")


class SetError(ValueError):
    """A set that cannot be used; the message names the value at fault."""


@dataclass(frozen=True)
class GeneSet:
    """A resolved set: perturbation rows (indices into the perturbations table, ascending, one per
    entity: a compound's pooled row, not its doses) and the names that matched nothing."""

    key: str
    label: str
    rows: np.ndarray
    unknown: tuple[str, ...] = ()
    names: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return int(len(self.rows))


# -- names in, perturbations out ---------------------------------------------------------------

def parse_names(text: str | None) -> list[str]:
    """Names from pasted or uploaded text: separated by commas, semicolons, spaces or new lines;
    duplicates (ignoring case) dropped, first spelling kept. Raises SetError naming the first
    token that cannot be a name, or when there are more than MAX_LIST_NAMES."""
    if not text:
        return []
    out: list[str] = []
    seen: set[str] = set()
    for tok in _SPLIT.split(text.strip()):
        if not tok:
            continue
        if not _NAME.match(tok):
            raise SetError(f"{tok[:40]!r} is not a gene or compound name (letters, digits and _.:@+-()/ only)")
        if tok.lower() not in seen:
            seen.add(tok.lower())
            out.append(tok)
    if len(out) > MAX_LIST_NAMES:
        raise SetError(f"{len(out)} names pasted; a set holds at most {MAX_LIST_NAMES} (it lives in the page's link)")
    return out


def entity_rows(perts: pd.DataFrame) -> np.ndarray:
    """Rows that stand for a whole entity (a compound pooled over doses, a gene, a control): a
    compound with no pooled row is represented by its dose rows."""
    level = perts["level"].astype(str).to_numpy() if "level" in perts.columns else np.full(len(perts), "pooled")
    pooled = level != "dose"
    key = perts["perturbation_type"].astype(str) + "\x1f" + perts["perturbation"].astype(str)
    has_pooled = key.isin(set(key[pooled])).to_numpy()
    return np.flatnonzero(pooled | ~has_pooled)


def name_index(perts: pd.DataFrame, aliases: dict[str, list[str]] | None = None) -> dict[str, np.ndarray]:
    """Lower-cased name -> entity rows it names: a pert_id, a perturbation name (compound id,
    gene), a gene symbol (CRISPR and ORF of one gene are both named by it), and ``aliases``
    (pert_id -> other names a biologist uses, e.g. a compound's common name)."""
    rows = entity_rows(perts)
    sub = perts.iloc[rows]
    by_name: dict[str, set[int]] = {}

    def add(name: object, row: int) -> None:
        if isinstance(name, str) and name:
            by_name.setdefault(name.lower(), set()).add(int(row))

    gene = sub["gene"] if "gene" in sub.columns else pd.Series(pd.NA, index=sub.index)
    for r, pid, pert, g in zip(rows, sub["pert_id"].astype(str), sub["perturbation"].astype(str), gene, strict=True):
        add(pid, r)
        add(pert, r)
        add(g if isinstance(g, str) else None, r)
        for a in (aliases or {}).get(pid, ()):
            add(a, r)
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in by_name.items()}


def resolve_names(names: list[str], index: dict[str, np.ndarray]) -> tuple[np.ndarray, tuple[str, ...]]:
    """(entity rows of every known name, ascending and unique; the names that matched nothing, in
    the order given)."""
    found: list[np.ndarray] = []
    unknown: list[str] = []
    for n in names:
        hit = index.get(n.lower())
        if hit is None:
            unknown.append(n)
        else:
            found.append(hit)
    rows = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
    return rows.astype(np.int64), tuple(unknown)


# -- annotation sets -----------------------------------------------------------------------------

def annotation_sets(genes: pd.DataFrame | None = None, targets: pd.DataFrame | None = None,
                    moa: pd.DataFrame | None = None) -> dict[str, dict[str, list[str]]]:
    """source -> set name -> member entity names, from the screen's annotation tables (each may be
    None): ``genes`` (gene, complex, pathway), ``targets`` (compound, gene), ``moa`` (compound, moa).
    A compound's target set holds the compound and its target genes. Sets of one member are left out
    (nothing to compare)."""
    out: dict[str, dict[str, list[str]]] = {}

    def group(df: pd.DataFrame | None, key: str, member: str) -> dict[str, list[str]]:
        if df is None or not {key, member} <= set(df.columns):
            return {}
        d = df[[key, member]].dropna().astype(str)
        d = d[(d[key] != "") & (d[key].str.lower() != "nan")]
        sets = {k: sorted(set(v)) for k, v in d.groupby(key, sort=True)[member]}
        return {k: v for k, v in sets.items() if len(v) > 1}

    out["complex"] = group(genes, "complex", "gene")
    out["pathway"] = group(genes, "pathway", "gene")
    out["moa"] = group(moa, "moa", "compound")
    tg = {}
    if targets is not None and {"compound", "gene"} <= set(targets.columns):
        for c, g in targets[["compound", "gene"]].dropna().astype(str).groupby("compound", sort=True)["gene"]:
            tg[c] = [c, *sorted(set(g))]
    out["targets"] = tg
    return {s: out[s] for s in SOURCES if out.get(s)}


# -- the URL form ------------------------------------------------------------------------------

def encode_annotation(source: str, name: str) -> str:
    if source not in SOURCES:
        raise SetError(f"unknown annotation source {source!r} (one of {', '.join(SOURCES)})")
    return f"ann:{source}:{name}"


def encode_list(names: list[str]) -> str:
    """The URL form of a pasted list; SetError when it would not fit in a link."""
    if not names:
        raise SetError("the pasted list holds no names")
    text = "list:" + ",".join(names)
    if len(text) > MAX_ENCODED_LEN:
        raise SetError(f"the list is {len(text):,} characters long; a link holds at most {MAX_ENCODED_LEN:,} "
                       "(paste fewer names)")
    return text


def decode_set(text: object) -> tuple[str, str, str] | tuple[str, list[str]] | None:
    """``('ann', source, name)``, ``('list', names)`` or None (no set). SetError naming the value
    when it is malformed: crafted values never raise anything else."""
    if text is None or text == "":
        return None
    if not isinstance(text, str) or len(text) > MAX_ENCODED_LEN:
        raise SetError("the set in the link is not text of at most "
                       f"{MAX_ENCODED_LEN:,} characters")
    kind, _, rest = text.partition(":")
    if kind == "ann":
        source, sep, name = rest.partition(":")
        if not sep or source not in SOURCES or not name or len(name) > 256:
            raise SetError(f"unknown annotation set {text[:80]!r} (expected ann:<{'|'.join(SOURCES)}>:<name>)")
        return ("ann", source, name)
    if kind == "list":
        names = parse_names(rest)
        if not names:
            raise SetError("the set in the link names nothing")
        return ("list", names)
    raise SetError(f"unknown set {text[:80]!r} (expected ann:... or list:...)")


def resolve_set(text: object, perts: pd.DataFrame, sets: dict[str, dict[str, list[str]]],
                index: dict[str, np.ndarray] | None = None) -> GeneSet | None:
    """The set a URL value names, resolved against a screen's perturbations and annotation sets."""
    decoded = decode_set(text)
    if decoded is None:
        return None
    index = index if index is not None else name_index(perts)
    if decoded[0] == "ann":
        _, source, name = decoded
        members = sets.get(source, {}).get(name)
        if members is None:
            raise SetError(f"this screen has no {SOURCES[source]} named {name!r}")
        rows, unknown = resolve_names(members, index)
        return GeneSet(str(text), f"{SOURCES[source]} {name}", rows, unknown, tuple(members))
    names = decoded[1]
    rows, unknown = resolve_names(names, index)
    return GeneSet(str(text), f"pasted list ({len(names)} names)", rows, unknown, tuple(names))


# -- statistics ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SetStats:
    """Mean within-set cosine of the members' aggregated embeddings against random sets of the same
    size drawn from ``pool_size`` perturbations of the members' types."""

    size: int
    mean_cosine: float
    null: np.ndarray  # the mean cosine of each random set
    p_value: float  # (1 + #null >= observed) / (1 + n_null)
    pool_size: int

    @property
    def n_null(self) -> int:
        return int(len(self.null))


def mean_pairwise_cosine(unit: np.ndarray, rows: np.ndarray) -> float:
    """Mean cosine over the k(k-1)/2 pairs of distinct members (unit vectors: from their sum)."""
    k = len(rows)
    if k < 2:
        raise SetError(f"a set needs at least 2 members on this screen to score; it has {k}")
    s = np.asarray(unit[np.asarray(rows)], dtype=np.float64).sum(axis=0)
    sq = np.asarray(unit[np.asarray(rows)], dtype=np.float64)
    return float((s @ s - np.einsum("ij,ij->", sq, sq)) / (k * (k - 1)))


def random_sets(pool: np.ndarray, k: int, n: int, seed: int = 0) -> np.ndarray:
    """(n, k) rows: n sets of k distinct members each, uniform over the pool's k-subsets."""
    pool = np.asarray(pool, dtype=np.int64)
    if not 2 <= k <= len(pool):
        raise SetError(f"cannot draw random sets of {k} from {len(pool)} perturbations")
    rng = np.random.default_rng(seed)
    if k * k > len(pool):  # a large share of the pool: random keys, the k smallest per set (chunks of ~2M numbers)
        chunk = max(1, 2_000_000 // len(pool))
        parts = [np.argpartition(rng.random((m, len(pool))), k - 1, axis=1)[:, :k]
                 for m in [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])]
        return pool[np.concatenate(parts)]
    out = rng.integers(0, len(pool), size=(n, k))
    while True:  # redraw any set with a repeated member (rare when k << pool): still uniform
        s = np.sort(out, axis=1)
        bad = np.flatnonzero((np.diff(s, axis=1) == 0).any(axis=1))
        if not bad.size:
            return pool[out]
        out[bad] = rng.integers(0, len(pool), size=(bad.size, k))


def null_pool(perts: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Entity rows of the members' perturbation types, controls excepted: a gene set is compared
    with random gene sets, a compound set with random compounds."""
    types = set(perts["perturbation_type"].astype(str).to_numpy()[rows]) - set(CONTROL_TYPES)
    ent = entity_rows(perts)
    t = perts["perturbation_type"].astype(str).to_numpy()[ent]
    return ent[np.isin(t, sorted(types))] if types else ent


def random_set_cosines(unit: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine of each random set (a row of ``draws``), in float64.

    Each set's sum of members is one row of (set-membership matrix) @ unit, a sparse product: no
    (sets x k x d) gather. That gather was 32 MB of fresh float64 for 1,000 sets of 31, and page-faulting
    it made the first set of a new process cost 0.35-0.45 s at 33,405 perturbations (7 ms this way).
    """
    from scipy import sparse

    n, k = draws.shape
    unit64 = np.asarray(unit, dtype=np.float64)
    member = sparse.csr_matrix((np.ones(n * k), draws.ravel(), np.arange(0, n * k + 1, k)), shape=(n, len(unit64)))
    sums = np.asarray(member @ unit64)
    sq = np.einsum("ij,ij->i", unit64, unit64)  # |v|^2 of every row: 1 up to rounding for unit vectors
    return ((sums * sums).sum(axis=1) - sq[draws].sum(axis=1)) / (k * (k - 1))


def set_statistics(unit: np.ndarray, rows: np.ndarray, pool: np.ndarray, n_null: int = N_NULL,
                   seed: int = 0) -> SetStats:
    """Observed mean within-set cosine and its p-value against ``n_null`` random same-size sets
    from ``pool`` (seeded: the same set always gets the same p)."""
    rows = np.asarray(rows, dtype=np.int64)
    obs = mean_pairwise_cosine(unit, rows)
    k = len(rows)
    draws = random_sets(pool, k, n_null, seed)
    null = random_set_cosines(unit, draws)
    p = (1 + int((null >= obs).sum())) / (1 + n_null)
    return SetStats(k, obs, null, p, int(len(pool)))


def member_activity(perts: pd.DataFrame, activity: pd.DataFrame | None, rows: np.ndarray) -> pd.DataFrame:
    """The members' rows of the activity table (pert_id, type, name, mAP, q, active), strongest
    first; a member the activity stage did not score keeps empty values (never a made-up 0)."""
    cols = ["pert_id", "perturbation_type", "perturbation"]
    out = perts.iloc[np.asarray(rows, dtype=np.int64)][cols].reset_index(drop=True)
    if activity is not None and len(activity):
        act = activity[["pert_id", "mean_average_precision", "q_value", "active"]]
        out = out.merge(act, on="pert_id", how="left")
        out = out.sort_values("mean_average_precision", ascending=False, na_position="last", kind="stable")
    return out.reset_index(drop=True)


def fraction_active(table: pd.DataFrame) -> tuple[int, int]:
    """(members active, members scored): members without an activity score are not counted."""
    if "active" not in table.columns:
        return 0, 0
    a = table["active"]
    scored = a.notna()
    return int(a[scored].astype(bool).sum()), int(scored.sum())


def member_well_rows(wells: pd.DataFrame, perts: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Rows of the wells table that belong to the member entities (every dose of a compound)."""
    sub = perts.iloc[np.asarray(rows, dtype=np.int64)]
    key = wells["perturbation_type"].astype(str) + "\x1f" + wells["perturbation"].astype(str)
    want = set(sub["perturbation_type"].astype(str) + "\x1f" + sub["perturbation"].astype(str))
    return np.flatnonzero(key.isin(want).to_numpy())


def member_point_rows(perts: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Rows of the perturbations table drawn for the members on the perturbation map: each
    member's entity row and its dose rows."""
    sub = perts.iloc[np.asarray(rows, dtype=np.int64)]
    key = perts["perturbation_type"].astype(str) + "\x1f" + perts["perturbation"].astype(str)
    want = set(sub["perturbation_type"].astype(str) + "\x1f" + sub["perturbation"].astype(str))
    return np.flatnonzero(key.isin(want).to_numpy())
