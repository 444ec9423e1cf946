"""Which stains a phenotype lives in, for screens embedded from images (no named features).

The channel-agnostic MAE embeds any subset of a screen's channels into the same space, so each
channel's share of a phenotype can be measured by leaving it out: embed the same wells with all
channels and with all but channel ``c`` (same block, tokens pooled over every channel, so every
channel set gives a vector of the same width in the same space), and see how far the phenotype
moves.

For a perturbation ``p`` with wells ``W`` and an embedding ``x`` (one per channel set):

- residual of a well: ``x_w - mean(x of the negative controls on w's plate)``; a control's own
  residual leaves itself out of that mean, so controls scatter as much as a treated well does;
- ``z = residual / sd``, ``sd`` the per-dimension spread of the *all-channels* controls' residuals
  (one metric for every channel set, so differences between sets are distances in one space,
  in units of control noise);
- phenotype ``d(p) = mean of z over W``; ``|d_all|`` is its size, compared with the same size for
  random draws of ``|W|`` control wells (the ``quantile`` of that null is the threshold): below it
  the perturbation has **no phenotype** to attribute and every channel is NaN;
- shift of channel ``c``: ``|d_all - d_without_c|``, how far the phenotype moves when ``c`` is
  not shown (also stored as a fraction of ``|d_all|``, ``shift_<c>``);
- attribution of channel ``c``: that shift against the same shift of random groups of as many
  *control* wells (pseudo-perturbations: no phenotype, the same noise), ``(shift - mean) / sd``
  over the draws: how much more than expected the phenotype moves when ``c`` is dropped. Leaving
  a channel out moves every embedding by its own amount (on the demo MAE, dropping DNA moves
  everything, noise included); the raw shift ranks that channel first for most perturbations,
  the calibrated one only where the phenotype needs it. The channel with the largest is the one
  the phenotype lives in most.

Pure numpy here except :func:`embed_channel_sets`, which runs an embedder over images it is given
(through the embed path's own tiling, :func:`precompute.embed.tile_sites`), and
:func:`sample_wells`, which draws the seeded sample a pipeline can afford and says what it drew.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.embed import tile_sites, to_float01
from precompute.significance import entity_wells

ALL = "all"  # the key of the all-channels embedding in a channel-set dict
# What the pipeline affords by default (the demo: about 30 s on 2 busy cores, see
# docs/channel-attribution.md); the validation benchmark also runs everything unsampled.
DEFAULT_SAMPLE = {"max_perturbations": 24, "max_wells_per_perturbation": 4, "controls_per_plate": 8,
                  "tiles_per_well": 8}


@dataclass(frozen=True)
class ChannelSample:
    """What was embedded with every channel set: rows into the wells table and their counts."""

    perturbations: tuple[str, ...]  # pert_ids attributed
    n_perturbations_total: int
    treated_rows: tuple[np.ndarray, ...]  # per perturbation, its sampled wells (wells-table rows)
    control_rows: np.ndarray  # sampled negative-control wells
    n_wells_total: int
    tiles_per_well: int | None  # tiles embedded per well; None = all
    tiles_per_well_total: int | None
    seed: int

    @property
    def rows(self) -> np.ndarray:
        """Every sampled well once, controls first, in the order the embeddings are made."""
        parts = [self.control_rows, *self.treated_rows]
        return pd.unique(np.concatenate(parts).astype(np.int64)) if parts else np.empty(0, np.int64)

    def describe(self) -> dict:
        """Both counts of everything sampled, for a manifest or a caption."""
        return {"perturbations": len(self.perturbations), "perturbations_total": self.n_perturbations_total,
                "wells": int(len(self.rows)), "wells_total": self.n_wells_total,
                "control_wells": int(len(self.control_rows)),
                "tiles_per_well": self.tiles_per_well, "tiles_per_well_total": self.tiles_per_well_total,
                "seed": self.seed}


def sampling_caption(info: dict) -> str:
    """'sampled: 24 of 307 perturbations, 110 of 1152 wells (24 controls), 8 of 16 tiles per well'."""
    tiles = info.get("tiles_per_well")
    total = info.get("tiles_per_well_total")
    tile_text = ("all tiles" if tiles is None or (total is not None and tiles >= total)
                 else f"{tiles} of {total if total is not None else '?'} tiles per well")
    return (f"sampled: {info['perturbations']} of {info['perturbations_total']} perturbations, "
            f"{info['wells']} of {info['wells_total']} wells ({info['control_wells']} controls), {tile_text}")


def sample_wells(pert_ids: Sequence[str], members: Sequence[np.ndarray], plates: np.ndarray, is_control: np.ndarray,
                 *, priority: np.ndarray | None = None, max_perturbations: int | None = 24,
                 max_wells_per_perturbation: int | None = 4, controls_per_plate: int | None = 8,
                 tiles_per_well: int | None = None, tiles_per_well_total: int | None = None,
                 seed: int = 0) -> ChannelSample:
    """A seeded sample of perturbations, their wells and the controls of their plates.

    ``members[i]``: wells-table rows of ``pert_ids[i]``. Perturbations are taken in ``priority``
    order (smallest first, e.g. activity q-values; NaN last), ties and the rest in a seeded random
    order; then at most ``max_wells_per_perturbation`` wells of each and ``controls_per_plate``
    negative controls of every plate those wells are on (None = no limit).
    """
    rng = np.random.default_rng(seed)
    n = len(pert_ids)
    if len(members) != n:
        raise ValueError(f"{n} perturbations but {len(members)} well lists")
    order = rng.permutation(n)
    if priority is not None:
        pri = np.asarray(priority, dtype=float)[order]
        order = order[np.argsort(np.where(np.isnan(pri), np.inf, pri), kind="stable")]
    chosen = order[: n if max_perturbations is None else max_perturbations]
    plates = np.asarray(plates).astype(str)
    ctrl = np.asarray(is_control, dtype=bool)
    treated = []
    for i in chosen:
        rows = np.asarray(members[i], dtype=np.int64)
        rows = rows[~ctrl[rows]]
        if max_wells_per_perturbation is not None and len(rows) > max_wells_per_perturbation:
            rows = np.sort(rng.choice(rows, max_wells_per_perturbation, replace=False))
        treated.append(rows)
    used = pd.unique(plates[np.concatenate(treated)]) if treated else []
    controls = []
    for plate in used:
        rows = np.flatnonzero(ctrl & (plates == plate))
        if controls_per_plate is not None and len(rows) > controls_per_plate:
            rows = np.sort(rng.choice(rows, controls_per_plate, replace=False))
        controls.append(rows)
    return ChannelSample(tuple(str(pert_ids[i]) for i in chosen), n, tuple(treated),
                         np.concatenate(controls).astype(np.int64) if controls else np.empty(0, np.int64),
                         len(plates), tiles_per_well, tiles_per_well_total, seed)


def channel_sets(channels: Sequence[str]) -> dict[str, list[int]]:
    """{'all': every channel index, channel name: every index but that channel's}."""
    idx = list(range(len(channels)))
    if len(channels) < 2:
        raise ValueError(f"channel attribution needs at least 2 channels to leave one out; got {list(channels)}")
    return {ALL: idx, **{str(c): [j for j in idx if j != i] for i, c in enumerate(channels)}}


def embed_channel_sets(embedder, images_of: Callable[[str], np.ndarray], well_ids: Sequence[str], tile: int,
                       channels: Sequence[str], *, tiles_per_well: int | None = None, seed: int = 0,
                       wells_per_batch: int = 32) -> dict[str, np.ndarray]:
    """Well embeddings (n, dim) float32 for every channel set of :func:`channel_sets`.

    Each well's sites are cut as the embed stage cuts them (:func:`tile_sites` at ``tile``), a
    seeded ``tiles_per_well`` of its tiles are kept (None: all), and every set embeds exactly
    those tiles, so sets differ only by the channel left out. A well is the mean of its tiles.
    """
    sets = channel_sets(channels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in sets}
    for start in range(0, len(well_ids), wells_per_batch):
        batch, counts = [], []
        for wid in well_ids[start:start + wells_per_batch]:
            tiles = tile_sites(images_of(wid), tile)
            if tiles_per_well is not None and len(tiles) > tiles_per_well:
                tiles = tiles[np.sort(rng.choice(len(tiles), tiles_per_well, replace=False))]
            batch.append(tiles)
            counts.append(len(tiles))
        tiles = to_float01(np.concatenate(batch))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for name, keep in sets.items():
            vecs = np.asarray(embedder.embed_tiles(np.ascontiguousarray(tiles[:, keep])), dtype=np.float64)
            parts[name].append(np.stack([vecs[bounds[i]:bounds[i + 1]].mean(axis=0) for i in range(len(counts))]))
    if not len(well_ids):
        raise ValueError("no wells to embed for channel attribution")
    return {name: np.concatenate(p).astype(np.float32) for name, p in parts.items()}


def control_residuals(emb: np.ndarray, plates: np.ndarray, is_control: np.ndarray) -> np.ndarray:
    """Each well minus its plate's control mean (float64); a control minus the mean of the *other*
    controls of its plate. Rows on a plate with fewer than 2 controls are NaN."""
    x = np.asarray(emb, dtype=np.float64)
    plates = np.asarray(plates).astype(str)
    ctrl = np.asarray(is_control, dtype=bool)
    out = np.full(x.shape, np.nan)
    for plate in pd.unique(plates):
        rows = np.flatnonzero(plates == plate)
        c = rows[ctrl[rows]]
        if len(c) < 2:
            continue
        total = x[c].sum(axis=0)
        out[rows] = x[rows] - total / len(c)
        out[c] = x[c] - (total - x[c]) / (len(c) - 1)
    return out


@dataclass(frozen=True)
class ControlNull:
    """What ``n_draws`` random groups of ``size`` control wells (pseudo-perturbations) show: the
    ``quantile`` of their phenotype size, and per channel the mean and sd of how far their
    (noise) phenotype moves when that channel is left out."""

    threshold: float
    shift_mean: np.ndarray  # (channels,)
    shift_sd: np.ndarray  # (channels,)


def control_null(z: dict[str, np.ndarray], ctrl: np.ndarray, channels: Sequence[str], size: int, quantile: float,
                 n_draws: int, rng: np.random.Generator) -> ControlNull:
    """:class:`ControlNull` of groups of ``size`` wells drawn from the rows ``ctrl`` of ``z``."""
    rows = ctrl[np.isfinite(z[ALL][ctrl]).all(axis=1)]
    if len(rows) < 2:
        nan = np.full(len(channels), np.nan)
        return ControlNull(np.nan, nan, nan)
    k = min(size, len(rows))
    draws = np.stack([rng.choice(rows, k, replace=False) for _ in range(n_draws)])
    d_all = z[ALL][draws].mean(axis=1)  # (n_draws, dim)
    shifts = np.stack([np.linalg.norm(d_all - z[c][draws].mean(axis=1), axis=1) for c in channels], axis=1)
    return ControlNull(float(np.quantile(np.linalg.norm(d_all, axis=1), quantile)), shifts.mean(axis=0),
                       shifts.std(axis=0, ddof=1))


def channel_attribution(sets: dict[str, np.ndarray], plates: np.ndarray, is_control: np.ndarray,
                        groups: Sequence[np.ndarray], channels: Sequence[str], *,
                        known_active: Sequence[bool] | None = None, quantile: float = 0.95,
                        n_draws: int = 500, seed: int = 0) -> pd.DataFrame:
    """One row per group (perturbation) of rows into the ``sets`` arrays: each channel's
    attribution (see the module doc: how much further the phenotype moves without the channel
    than groups of as many control wells move, in sds of theirs), ``shift_<channel>`` (the move as
    a fraction of the phenotype), ``phenotype`` (|d_all| in control-noise units), ``null`` (its
    threshold for that many wells), ``beyond_controls`` (phenotype > null), ``has_phenotype``,
    ``n_wells`` and the ranked ``top_channel`` / ``second_channel`` ('' where there is no phenotype).

    ``known_active``: per group, whether a stronger test already found a phenotype (the relate
    stage's mAP q-value over all of a perturbation's wells in the aligned map); such a group has
    a phenotype even when its few sampled wells do not clear the noise of one pooled block."""
    if ALL not in sets:
        raise ValueError(f"channel sets {sorted(sets)} lack the all-channels embedding {ALL!r}")
    missing = [c for c in channels if c not in sets]
    if missing:
        raise ValueError(f"channel sets {sorted(sets)} lack the embeddings without {missing}")
    if not len(groups):
        return empty_table(channels)
    ctrl = np.asarray(is_control, dtype=bool)
    res = {name: control_residuals(sets[name], plates, ctrl) for name in [ALL, *channels]}
    sd = np.nanstd(res[ALL][ctrl], axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(sd > 0, 1.0 / sd, 0.0)  # a dimension constant over controls carries no signal
    z = {name: r * scale for name, r in res.items()}
    rng = np.random.default_rng(seed)
    nulls: dict[int, ControlNull] = {}
    rows = []
    known = np.zeros(len(groups), bool) if known_active is None else np.asarray(known_active, dtype=bool)
    if len(known) != len(groups):
        raise ValueError(f"known_active has {len(known)} values for {len(groups)} groups")
    for g, active in zip(groups, known):
        g = np.asarray(g, dtype=np.int64)
        d_all = np.nanmean(z[ALL][g], axis=0) if len(g) else np.full(z[ALL].shape[1], np.nan)
        size = float(np.linalg.norm(d_all))
        if len(g) not in nulls:
            nulls[len(g)] = control_null(z, np.flatnonzero(ctrl), channels, len(g), quantile, n_draws, rng)
        null = nulls[len(g)]
        beyond = bool(np.isfinite(size) and np.isfinite(null.threshold) and size > null.threshold)
        has = bool(np.isfinite(size) and size > 0 and (beyond or active))
        row = {"n_wells": len(g), "phenotype": size, "null": null.threshold, "beyond_controls": beyond,
               "has_phenotype": has}
        shifts = np.array([np.linalg.norm(d_all - np.nanmean(z[c][g], axis=0)) for c in channels])
        with np.errstate(invalid="ignore", divide="ignore"):
            beyond_null = np.where(null.shift_sd > 0, (shifts - null.shift_mean) / null.shift_sd, np.nan)
        for i, c in enumerate(channels):
            row[c] = float(beyond_null[i]) if has else np.nan
            row[f"shift_{c}"] = float(shifts[i] / size) if has else np.nan
        rows.append(row)
    table = pd.DataFrame(rows, columns=["n_wells", "phenotype", "null", "beyond_controls", "has_phenotype",
                                         *channels, *(f"shift_{c}" for c in channels)])
    ranked = rank_channels(table, channels)
    return pd.concat([table, ranked], axis=1)


def empty_table(channels: Sequence[str]) -> pd.DataFrame:
    """:func:`channel_attribution`'s columns, typed, no rows (nothing was sampled)."""
    cols = {"n_wells": "int64", "phenotype": "float64", "null": "float64", "beyond_controls": "bool",
            "has_phenotype": "bool", **{c: "float64" for c in channels},
            **{f"shift_{c}": "float64" for c in channels}, "top_channel": "object",
            "second_channel": "object"}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})


def rank_channels(table: pd.DataFrame, channels: Sequence[str]) -> pd.DataFrame:
    """``top_channel`` and ``second_channel`` of each row by attribution ('' where all are NaN)."""
    vals = table[list(channels)].to_numpy(dtype=float)
    filled = np.where(np.isfinite(vals), vals, -np.inf)
    order = np.argsort(-filled, axis=1, kind="stable")
    names = np.asarray(channels, dtype=object)
    ok = np.isfinite(vals)
    top = [names[o[0]] if ok[i, o[0]] else "" for i, o in enumerate(order)] if len(vals) else []
    second = [names[o[1]] if len(o) > 1 and ok[i, o[1]] else "" for i, o in enumerate(order)] if len(vals) else []
    return pd.DataFrame({"top_channel": top, "second_channel": second}, index=table.index)


def channel_summary(table: pd.DataFrame, channels: Sequence[str]) -> pd.DataFrame:
    """Per channel over the perturbations with a phenotype: median attribution and how often it
    ranks first: the screen-level view of which stains carry its phenotypes."""
    has = table[table["has_phenotype"]]
    return pd.DataFrame({"channel": list(channels),
                         "median_attribution": [float(has[c].median()) if len(has) else np.nan for c in channels],
                         "n_top": [int((has["top_channel"] == c).sum()) for c in channels]})


def attribute_screen(wells: pd.DataFrame, entities: pd.DataFrame, embedder, images_of: Callable[[str], np.ndarray],
                     tile: int, channels: Sequence[str], *, q_values: pd.Series | None = None,
                     alpha: float = 0.05, tiles_total: int | None = None, seed: int = 0, quantile: float = 0.95,
                     **sample: int | None) -> tuple[pd.DataFrame, dict]:
    """Channel attribution of a screen's perturbations on a seeded sample of its wells.

    ``entities``: the aggregate stage's table (pooled rows are attributed, negative controls are
    not); ``q_values``: per ``pert_id``, the activity q-values: the smallest are sampled first (the
    perturbations with a phenotype are the ones worth the compute) and those below ``alpha`` count
    as having a phenotype (see :func:`channel_attribution`); ``sample``: :data:`DEFAULT_SAMPLE`'s keys, None
    meaning no limit. Returns (one row per sampled perturbation: ``pert_id`` then
    :func:`channel_attribution`'s columns, the sample's :meth:`ChannelSample.describe`).
    """
    options = {**DEFAULT_SAMPLE, **sample}
    unknown = sorted(set(options) - set(DEFAULT_SAMPLE))
    if unknown:
        raise ValueError(f"unknown sampling options {unknown}; known: {sorted(DEFAULT_SAMPLE)}")
    ctrl = (wells["perturbation_type"].astype(str) == "negative_control").to_numpy()
    pooled = entities[(entities["level"].astype(str) == "pooled")
                      & (entities["perturbation_type"].astype(str) != "negative_control")].reset_index(drop=True)
    members = entity_wells(wells, pooled)
    ids = pooled["pert_id"].astype(str).tolist()
    pri = None if q_values is None else q_values.reindex(ids).to_numpy(dtype=float)
    drawn = sample_wells(ids, [members.of(i) for i in range(len(ids))], wells["plate"].to_numpy(), ctrl, priority=pri,
                         tiles_per_well_total=tiles_total, seed=seed, **options)
    rows = drawn.rows
    if not drawn.perturbations or not len(drawn.control_rows):  # nothing to attribute, or nothing to compare with
        empty = empty_table(channels)
        empty.insert(0, "pert_id", pd.Series([], dtype=object))
        return empty, drawn.describe()
    position = {int(r): i for i, r in enumerate(rows)}
    well_ids = wells["well_id"].astype(str).to_numpy()[rows].tolist()
    sets = embed_channel_sets(embedder, images_of, well_ids, tile, channels, tiles_per_well=drawn.tiles_per_well,
                              seed=seed)
    groups = [np.array([position[int(r)] for r in g], dtype=np.int64) for g in drawn.treated_rows]
    picked = [ids.index(p) for p in drawn.perturbations]
    active = None if pri is None else pri[picked] < alpha
    table = channel_attribution(sets, wells["plate"].to_numpy()[rows], ctrl[rows], groups, channels,
                                known_active=active, quantile=quantile, seed=seed)
    table.insert(0, "pert_id", list(drawn.perturbations))
    return table, drawn.describe()
