"""Control versus treatment: distance-to-control distributions and per-perturbation activity.

Phenotypic activity (PRIMER): for each perturbation, the mean average precision (mAP) of
retrieving its replicate wells against negative-control wells, with permutation p-values and
Benjamini-Hochberg q-values; "active" = q < 0.05.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from phenomix_dash.names import short_labels

from .palette import PERTURBATION_TYPE_COLOURS, PERTURBATION_TYPE_LABELS

Q_ACTIVE = 0.05
# -log10(q) is drawn up to this many decades: a q of 0 (no null draw beat it) sits on the ceiling.
MAX_NEG_LOG10_Q = 6.0
TABLE_COLUMNS = ["rank", "pert_id", "name", "perturbation", "moa", "type", "perturbation_type", "concentration_um",
                 "n_wells", "n_plates", "replicate_cosine", "mean_average_precision", "p_value", "q_value", "neg_log10_q",
                 "active", "inchikey", "synonyms"]
# Searched by filter_activity besides the id: what a biologist may type.
SEARCH_COLUMNS = ("perturbation", "pert_id", "name", "moa", "inchikey", "synonyms")


def _type_order(types: pd.Series | np.ndarray) -> list[str]:
    present = set(pd.Series(types).astype(str))
    return [t for t in PERTURBATION_TYPE_COLOURS if t in present] + sorted(present - set(PERTURBATION_TYPE_COLOURS))


def distance_distribution_figure(
    values: np.ndarray,
    types: np.ndarray,
    *,
    kind: str = "violin",
    label: str = "distance to plate controls",
    max_per_group: int = 5000,
    seed: int = 0,
) -> go.Figure:
    """Distributions of a per-well distance (n,) by perturbation type (n,).

    kind 'violin': one violin (with box) per type from at most ``max_per_group`` sampled wells,
    so the payload stays small at any screen size; 'ecdf': per type, 201 quantiles of all wells
    drawn as a cumulative curve (exact and tiny). Negative controls come first: treatments that do
    something sit to the right of / above them.
    """
    if kind not in ("violin", "ecdf"):
        raise ValueError(f"kind must be 'violin' or 'ecdf', got {kind!r}")
    v = np.asarray(values, dtype=float)
    t = pd.Series(np.asarray(types)).astype(str).to_numpy()
    if v.shape != t.shape:
        raise ValueError(f"values {v.shape} and types {t.shape} differ in shape")
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    probs = np.linspace(0, 1, 201)
    drawn = total = 0
    for typ in _type_order(t):
        x = v[(t == typ) & np.isfinite(v)]
        if x.size == 0:
            continue
        total += x.size
        name = f"{PERTURBATION_TYPE_LABELS.get(typ, typ)} ({x.size:,})"
        colour = PERTURBATION_TYPE_COLOURS.get(typ, "#000000")
        if kind == "violin":
            if x.size > max_per_group:
                x = rng.choice(x, max_per_group, replace=False)
            drawn += x.size
            fig.add_trace(go.Violin(y=x.astype(np.float32), name=name, line_color=colour, fillcolor=colour, opacity=0.6,
                                    box_visible=True, meanline_visible=False, points=False, spanmode="hard",
                                    hoverinfo="y+name"))
        else:
            fig.add_trace(go.Scatter(x=np.quantile(x, probs), y=probs, mode="lines", name=name,
                                     line={"color": colour, "width": 3 if typ == "negative_control" else 2,
                                           "dash": "dash" if typ == "negative_control" else "solid"},
                                     hovertemplate=f"{label} %{{x:.3g}}: %{{y:.0%}} of wells below<extra>{name}</extra>"))
    if kind == "violin":
        fig.update_layout(yaxis_title=label, xaxis_title="perturbation type (wells)", showlegend=False)
    else:
        fig.update_layout(xaxis_title=label, yaxis_title="fraction of wells (cumulative)", yaxis_tickformat=".0%",
                          legend={"orientation": "h", "y": -0.25})
    title = "Distance of each well to its plate's negative controls"
    if kind == "violin" and drawn < total:  # the counts in the trace names are of all wells
        title += (f"<br><sup>violins from a seeded sample of {drawn:,} of {total:,} wells "
                  f"(at most {max_per_group:,} per type)</sup>")
    fig.update_layout(title=title, height=380, plot_bgcolor="#FFFFFF", margin={"l": 60, "r": 10, "t": 60, "b": 40})
    return fig


def activity_table(perturbations: pd.DataFrame, activity: pd.DataFrame) -> pd.DataFrame:
    """One row per scored perturbation, ranked by mAP (highest first), for the table and volcano.

    perturbations: perturbations() (pert_id, perturbation_type, perturbation, level, n_wells, ...),
    with the annotated name, moa, inchikey and synonyms (phenomix_dash/names.py) when known;
    activity: activity() (pert_id, mean_average_precision, p_value, q_value, active, ...).
    Entities without an activity score (e.g. single-well ones) are left out. ``neg_log10_q`` is
    capped at MAX_NEG_LOG10_Q. Returns the columns of TABLE_COLUMNS (no name: missing).
    """
    need = {"pert_id", "mean_average_precision", "q_value"}
    if not need <= set(activity.columns):
        raise ValueError(f"activity table lacks column(s) {sorted(need - set(activity.columns))}")
    extra = [c for c in ("pert_id", "level", "concentration_um", "n_plates", "replicate_cosine", "name", "moa", "inchikey",
                         "synonyms") if c in perturbations.columns and c not in ("perturbation", "perturbation_type")]
    df = activity.merge(perturbations[extra], on="pert_id", how="left") if "pert_id" in perturbations.columns else activity.copy()
    for c in TABLE_COLUMNS:
        if c not in df.columns and c not in ("rank", "type", "neg_log10_q"):
            df[c] = np.nan
    df["mean_average_precision"] = pd.to_numeric(df["mean_average_precision"], errors="coerce")
    df["q_value"] = pd.to_numeric(df["q_value"], errors="coerce")
    # Not scored (q missing) is neither active nor inactive: NA, shown as "no value".
    df["active"] = pd.array(np.where(df["q_value"].notna(), df["q_value"] < Q_ACTIVE, None), dtype="boolean")
    q = df["q_value"].to_numpy(dtype=float)
    df["neg_log10_q"] = np.minimum(-np.log10(np.clip(q, 10.0 ** -MAX_NEG_LOG10_Q, 1.0)), MAX_NEG_LOG10_Q)
    df["type"] = df["perturbation_type"].astype(str).map(lambda t: PERTURBATION_TYPE_LABELS.get(t, t))
    # Synonyms travel as one text (the grid and the CSV show it; a tuple would not survive either).
    df["synonyms"] = [("; ".join(v) or None) if isinstance(v, tuple) else v for v in df["synonyms"]]
    df = df.sort_values(["mean_average_precision", "q_value"], ascending=[False, True], na_position="last", kind="stable")
    df["rank"] = np.arange(1, len(df) + 1)
    return df[TABLE_COLUMNS].reset_index(drop=True)


def filter_activity(table: pd.DataFrame, *, types: list[str] | None = None, active_only: bool = False,
                    search: str | None = None) -> pd.DataFrame:
    """Rows of `activity_table` of the given perturbation types, active only, and/or whose id,
    name, MOA, InChIKey or a synonym contains ``search`` (case-insensitive, literal)."""
    keep = np.ones(len(table), dtype=bool)
    if types:
        keep &= table["perturbation_type"].isin(types).to_numpy()
    if active_only:
        keep &= table["active"].astype("boolean").fillna(False).to_numpy(dtype=bool)  # filtering only: NA is not active
    if search:
        s = search.strip().lower()
        hit = np.zeros(len(table), dtype=bool)
        for c in SEARCH_COLUMNS:
            if c in table.columns:
                hit |= table[c].astype("string").str.lower().str.contains(s, regex=False).fillna(False).to_numpy(dtype=bool)
        keep &= hit
    return table[keep]


def volcano_figure(table: pd.DataFrame, *, highlight: str | None = None, gl_threshold: int = 5000) -> go.Figure:
    """mAP (x) against -log10 q (y), one trace per perturbation type, with the q = 0.05 line.

    ``customdata`` holds pert_id (read back from clicks; Scattergl is used above ``gl_threshold``
    points, where the page maps pointIndex back instead). ``highlight``: a pert_id to ring.
    """
    fig = go.Figure()
    scatter = go.Scattergl if len(table) > gl_threshold else go.Scatter
    for typ in _type_order(table["perturbation_type"]):
        sub = table[table["perturbation_type"].astype(str) == typ]
        fig.add_trace(scatter(
            x=sub["mean_average_precision"], y=sub["neg_log10_q"], mode="markers",
            name=PERTURBATION_TYPE_LABELS.get(typ, typ), customdata=sub["pert_id"].astype(str).to_numpy(dtype=object),
            text=short_labels(sub),
            marker={"color": PERTURBATION_TYPE_COLOURS.get(typ, "#000"), "size": 8, "opacity": 0.8,
                    "line": {"width": 0.5, "color": "#FFF"}},
            hovertemplate="<b>%{text}</b> (%{customdata})<br>mAP %{x:.3f}, -log10 q %{y:.2f}<extra></extra>",
        ))
    if highlight is not None:
        h = table[table["pert_id"] == highlight]
        if len(h):
            fig.add_trace(go.Scatter(x=h["mean_average_precision"], y=h["neg_log10_q"], mode="markers", name="selected",
                                     marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#000"}},
                                     hoverinfo="skip"))
    fig.add_hline(y=-np.log10(Q_ACTIVE), line={"dash": "dash", "color": "#555"}, annotation_text="q = 0.05",
                  annotation_position="top left")
    fig.update_layout(title="Phenotypic activity: replicate retrieval against negative controls",
                      xaxis={"title": {"text": "mAP (replicates vs negative controls)"}, "range": [-0.02, 1.02]},
                      yaxis={"title": {"text": "-log10 q (capped at 6)"}}, height=420, plot_bgcolor="#FFFFFF",
                      margin={"l": 60, "r": 10, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2},
                      clickmode="event", hovermode="closest")
    return fig
