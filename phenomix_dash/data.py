"""The only reader of the artifact store. Read-only, cached per process.

Pages never open files themselves: they ask this module, which knows the store layout
(``precompute.artifacts``) and the run index written by ``python -m precompute run``. Nothing
here recomputes an expensive stage; missing artifacts raise `DataUnavailable` with a message a
user can act on, which pages show instead of a traceback.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phenomix_dash import screens
from phenomix_dash.cache import memoize
from precompute.artifacts import ArtifactError, ArtifactStore, Stage
from precompute.contract import ContractError
from precompute.screen import Screen, load_screen, read_descriptor, read_ground_truth
from precompute.stages.registry import declared_outputs

_settings: Any = None


class DataUnavailable(RuntimeError):
    """Something the page needs is not in the store; the message says what to run."""


class PhenomixData:
    """Artifacts of one run of one store."""

    def __init__(self, store_root: Path, run: str = "default") -> None:
        self.store_root = Path(store_root)
        self.run_name = run
        try:
            self.store = ArtifactStore(self.store_root, create=False)
            self.run = self.store.get_run(run)
        except ArtifactError as err:
            raise DataUnavailable(str(err)) from None

    # -- stages ---------------------------------------------------------------
    def stage(self, *path: str) -> Stage:
        """A completed stage by its place in the run index, e.g. stage('align', 'mae', 'tvn')."""
        node: Any = self.run.get("stages", {})
        for p in path:
            if not isinstance(node, dict) or p not in node:
                raise DataUnavailable(f"the run {self.run_name!r} has no {'/'.join(path)} stage; rerun precompute")
            node = node[p]
        name = path[0]
        try:
            st = self.store.open_stage(name, node)
            screens.verify_stage(st, str(self.store_root), name, str(node))
            return st
        except ArtifactError as err:
            # A damaged stage makes the whole screen unavailable (listed so in the switcher).
            screens.mark_unavailable(self.store_root, self.run_name, str(err))
            raise DataUnavailable(f"{err} (rerun `python -m precompute run --force {name}` to rebuild it)") from None

    def stage_info(self, *path: str) -> dict[str, Any]:
        """What a stage recorded about how it computed (its manifest's ``info``: e.g. the UMAP fit
        sample, the replicate-mAP sample); {} when it recorded nothing."""
        info = self.stage(*path).manifest.get("info")
        return dict(info) if isinstance(info, dict) else {}

    def artifact(self, stage: str, name: str, embedder: str | None = None) -> Any:
        """The output ``name`` that ``stage`` declares (precompute/stages/<stage>.py): an array
        (memory-mapped), a table (read once, shared read-only) or a JSON object. Per-embedder stages
        read ``embedder`` (default: the primary one), alignments the primary method. Raises KeyError
        naming the stage and its declared outputs when ``name`` is not one of them."""
        outputs = declared_outputs(stage)
        if name not in outputs:
            raise KeyError(f"stage {stage!r} declares no output {name!r}; it declares {', '.join(outputs)}")
        path: tuple[str, ...] = (stage,)
        node = self.run.get("stages", {}).get(stage)
        if node is None:
            raise DataUnavailable(f"the run {self.run_name!r} has no {stage} stage; rerun precompute")
        if isinstance(node, dict):  # per embedder (and, for align, per method)
            path += (embedder or self.primary_embedder,)
            if isinstance(node.get(path[1]), dict):
                path += (self.primary_align,)
        if outputs[name] == "table":
            return self._table(path, name)
        st = self.stage(*path)
        return st.array(name) if outputs[name] == "array" else st.json(name)

    def has_stage(self, *path: str) -> bool:
        node: Any = self.run.get("stages", {})
        for p in path:
            if not isinstance(node, dict) or p not in node:
                return False
            node = node[p]
        return True

    # -- screen -----------------------------------------------------------------
    @cached_property
    def wells(self) -> pd.DataFrame:
        """The validated wells table (read-only view: callers must not mutate it)."""
        return self.stage("ingest").table("wells")

    @cached_property
    def screen(self) -> Screen:
        info = self.run.get("screen", {})
        try:
            return load_screen(info["path"])
        except (KeyError, ContractError) as err:
            raise DataUnavailable(f"screen of run {self.run_name!r} cannot be opened: {err}") from None

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.run.get("screen", {}).get("channels", ()))

    @property
    def n_sites(self) -> int:
        return int(self.run.get("screen", {}).get("sites", 1))

    @property
    def plate_format(self) -> int:
        return int(self.run.get("screen", {}).get("plate_format", 384))

    @cached_property
    def well_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.wells["well_id"])}

    @cached_property
    def plates(self) -> pd.DataFrame:
        """One row per plate: plate, batch, wells, negative controls."""
        w = self.wells
        g = w.groupby("plate", sort=True)
        return pd.DataFrame(
            {
                "plate": list(g.groups),
                "batch": g["batch"].first().to_numpy(),
                "n_wells": g.size().to_numpy(),
                "n_negative_controls": g["perturbation_type"].apply(lambda s: int((s == "negative_control").sum())).to_numpy(),
            }
        )

    def plate_rows(self, plate: str) -> np.ndarray:
        """Positions of ``plate``'s wells in the wells table (and in every per-well array)."""
        rows = np.flatnonzero((self.wells["plate"] == plate).to_numpy())
        if not rows.size:
            raise DataUnavailable(f"unknown plate {plate!r}")
        return rows

    def plate_wells(self, plate: str) -> pd.DataFrame:
        return self.wells.iloc[self.plate_rows(plate)]

    def well_row(self, well_id: str) -> pd.Series:
        i = self.well_index.get(well_id)
        if i is None:
            raise DataUnavailable(f"unknown well {well_id!r}")
        return self.wells.iloc[i]

    def well_images(self, well_id: str) -> np.ndarray:
        """(sites, channels, H, W) at the screen's bit depth."""
        self.well_row(well_id)
        # The run says whether the screen has images at all: an embeddings-only screen must not be
        # opened (and its wells table validated, ~2 s at 100,000 wells) to learn that it has none.
        if self.run.get("screen", {}).get("has_images") is False or not self.screen.has_well_images(well_id):
            raise DataUnavailable(f"well {well_id} has no images (this screen was built from embeddings or profiles)")
        try:
            return self.screen.load_images(well_id)
        except ContractError as err:
            raise DataUnavailable(str(err)) from None

    def provenance(self) -> dict[str, Any]:
        """What produced the views: screen, embedder and checkpoint, alignment, artifact keys."""
        return {
            "store": str(self.store_root),
            "run": self.run_name,
            "screen": self.run.get("screen", {}).get("name"),
            "primary": self.run.get("primary", {}),
            "checkpoint": self.run.get("checkpoint"),
            "finished": self.run.get("finished"),
            "stages": self.run.get("stages", {}),
        }

    # -- map-level artifacts, per embedder (default: the run's primary one) --------

    @property
    def embedders(self) -> list[str]:
        return list(self.run.get("stages", {}).get("embed", {}))

    @property
    def primary_embedder(self) -> str:
        return self.run.get("primary", {}).get("embedder") or (self.embedders or ["?"])[0]

    @property
    def primary_align(self) -> str:
        return self.run.get("primary", {}).get("align", "tvn")

    def well_embeddings(self, space: str = "aligned", embedder: str | None = None) -> np.ndarray:
        """(n_wells, d) memory-mapped; space 'raw' or 'aligned' (the primary alignment)."""
        return self.artifact("embed" if space == "raw" else "align", "embeddings", embedder)

    def umap(self, space: str = "aligned", embedder: str | None = None) -> np.ndarray:
        """(n, 2) UMAP coordinates: space 'raw' / 'aligned' (wells) or 'perturbations'."""
        if space not in ("raw", "aligned", "perturbations"):
            raise DataUnavailable(f"unknown UMAP space {space!r}")
        return self.artifact("project", f"umap_{space}", embedder)

    def perturbations(self, embedder: str | None = None) -> pd.DataFrame:
        """One row per perturbation entity (pert_id, perturbation_type, perturbation, level, ...)."""
        return self.artifact("aggregate", "perturbations", embedder)

    def unit_embeddings(self, embedder: str | None = None) -> np.ndarray:
        """(n_perturbations, d) L2-normalised aggregated embeddings, row order = perturbations()."""
        return self.artifact("aggregate", "unit_embeddings", embedder)

    def neighbours(self, embedder: str | None = None) -> dict[str, np.ndarray]:
        st = self.stage("relate", embedder or self.primary_embedder)
        return {k: st.array(f"neighbours_{k}") for k in ("top_idx", "top_sim", "bottom_idx", "bottom_sim")}

    def similarity(self, kind: str, embedder: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(matrix memmap float16, row perturbation indices, column perturbation indices).

        kind: 'gene_compound', 'gene_gene' or 'compound_compound'. Indices refer to perturbations().
        """
        st = self.stage("relate", embedder or self.primary_embedder)
        rows, cols = {"gene_compound": ("gene", "compound"), "gene_gene": ("gene", "gene"),
                      "compound_compound": ("compound", "compound")}[kind]
        return st.array(f"sim_{kind}"), st.array(f"{rows}_index"), st.array(f"{cols}_index")

    def null_similarity(self, embedder: str | None = None) -> np.ndarray:
        """Sorted cosine similarities of random perturbation pairs (the percentile null)."""
        return self.artifact("relate", "null_similarity", embedder)

    def well_metrics(self, embedder: str | None = None) -> pd.DataFrame:
        """Per well: distance_to_controls_{raw,aligned}, pc1_{raw,aligned} (row order = wells)."""
        return self.artifact("relate", "well_metrics", embedder)

    def activity(self, embedder: str | None = None) -> pd.DataFrame:
        """Per perturbation: mAP against negative controls, p and q values, active (q < 0.05)."""
        return self.artifact("relate", "activity", embedder)

    # -- characterise: match significance, dose-response, feature drivers (docs/artifacts.md) ----

    def has_characterise(self, embedder: str | None = None) -> bool:
        return self.has_stage("characterise", embedder or self.primary_embedder)

    def has_significance(self, embedder: str | None = None) -> bool:
        """Match significance was computed (large screens skip it; the manifest says why)."""
        e = embedder or self.primary_embedder
        return self.has_characterise(e) and self.stage("characterise", e).has("null_sig_offsets")

    def neighbour_significance(self, embedder: str | None = None) -> dict[str, np.ndarray]:
        """p and q (float64, aligned with neighbours()) of each stored neighbour pair; NaN: not tested."""
        st = self.stage("characterise", embedder or self.primary_embedder)
        return {f"{side}_{v}": st.array(f"neighbours_{side}_{v}") for side in ("top", "bottom") for v in ("p", "q")}

    def pair_significance(self, query: int, targets: np.ndarray, embedder: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """p and BH q of (query, target) pairs, rows of perturbations(), on demand from the stored
        null and family (nothing expensive is recomputed). NaN where the pair shares wells (a
        compound and its own doses), which the family does not test."""
        from precompute.significance import pair_pvalue

        e = embedder or self.primary_embedder
        null, family, unit, means, key = _significance_parts(self, e)
        t = np.asarray(targets, dtype=np.int64)
        a = np.full(t.size, int(query), dtype=np.int64)
        p = pair_pvalue(unit, means, a, t, null) if t.size else np.empty(0)
        p = np.where((key[a] == key[t]) | (a == t), np.nan, p)
        q = np.full_like(p, np.nan)
        ok = np.isfinite(p)
        if ok.any() and family.size:
            q[ok] = family.qvalue(p[ok])
        return p, q

    def dose_response(self, embedder: str | None = None) -> pd.DataFrame:
        """One row per compound with 3+ doses: its 4PL fit (precompute/dose_response.DoseFit columns)."""
        return self.artifact("characterise", "dose_response", embedder)

    def dose_points(self, embedder: str | None = None) -> pd.DataFrame:
        """Per well of the fitted compounds: well_id, perturbation, concentration_um, plate, response."""
        return self.artifact("characterise", "dose_points", embedder)

    def dose_controls(self, embedder: str | None = None) -> pd.DataFrame:
        """Per plate: the negative controls' median response and their count."""
        return self.artifact("characterise", "dose_controls", embedder)

    @property
    def driver_embedder(self) -> str | None:
        """The embedder whose named features explain phenotypes: the primary one when it has named
        features, else the first that has (pixel statistics on image screens); None when none has."""
        order = [self.primary_embedder] + [e for e in self.embedders if e != self.primary_embedder]
        for e in order:
            if self.has_characterise(e) and self.stage("characterise", e).has("driver_effect"):
                return e
        return None

    def feature_drivers(self, embedder: str | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(features table: feature, compartment, kind, channel; effect and q, (n_perturbations x
        n_features) float32 memory maps, rows = perturbations(embedder))."""
        e = embedder or self.driver_embedder
        if e is None:
            raise DataUnavailable("no embedder of this run has named features (pixel statistics or profiles)")
        st = self.stage("characterise", e)
        if not st.has("driver_effect"):
            raise DataUnavailable(f"the {e} embedder has no named features")
        return self._table(("characterise", e), "features"), st.array("driver_effect"), st.array("driver_q")

    def match_calibration(self) -> dict[str, Any]:
        """The tracked calibration of match significance (benchmarks/match_calibration.py writes it):
        measured on the screen it names, which may not be this run's."""
        import json

        path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "match_calibration.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataUnavailable(f"{path}: no match calibration results ({err})") from None

    def benchmarks(self) -> dict[str, Any]:
        return self.artifact("evaluate", "benchmarks")

    def benchmark_table(self, name: str) -> pd.DataFrame:
        return self.artifact("evaluate", name)

    def ground_truth(self, name: str) -> pd.DataFrame | None:
        """Annotation/truth tables shipped with the screen: relationships, compound_targets, ..."""
        try:
            return read_ground_truth(self._screen_root, self.screen_descriptor, name)
        except ContractError as err:
            raise DataUnavailable(str(err)) from None

    @property
    def _screen_root(self) -> Path:
        try:
            return Path(self.run["screen"]["path"])
        except (KeyError, TypeError):
            raise DataUnavailable(f"the run {self.run_name!r} does not name its screen folder") from None

    @cached_property
    def screen_descriptor(self) -> dict:
        """The screen's descriptor alone: annotations are read at every page load, and opening the
        whole screen (`screen`) validates its wells table (~25 s at a million wells)."""
        if "screen" in self.__dict__:
            return self.screen.descriptor
        try:
            return read_descriptor(self._screen_root)
        except ContractError as err:
            raise DataUnavailable(f"screen of run {self.run_name!r} cannot be opened: {err}") from None

    def _table(self, path: tuple[str, ...], name: str) -> pd.DataFrame:
        """Tables are small next to the arrays: read once per process, then shared read-only."""
        return _stage_table(self, path, name)


# Stages are checked against their manifest checksums once per process (screens.verify_stage): a
# corrupted artifact is named the first time a page asks for it instead of being served.
_verify = screens.verify_stage


@memoize(256, store=True)
def _stage_table(d: PhenomixData, path: tuple[str, ...], name: str) -> pd.DataFrame:
    return d.stage(*path).table(name)


@memoize(8, store=True)
def _significance_parts(d: PhenomixData, embedder: str) -> tuple[Any, Any, np.ndarray, np.ndarray, np.ndarray]:
    """The stored match null, the pair family (its BH tail minimum computed), the aggregated
    embeddings and which perturbations share wells, read and derived once per process: every
    neighbour list's q-values use them, and redoing the last two per answer was most of the
    dashboard's CPU under the 50-user load test at the million-well store (py-spy)."""
    from precompute.significance import MatchNull, PairFamily, _overlap_key

    st = d.stage("characterise", embedder)
    null = MatchNull.load(lambda n: st.array(f"null_{n}", mmap=False))
    agg = d.stage("aggregate", embedder)
    family = PairFamily(np.asarray(st.array("family_sorted_p", mmap=False)))
    family.tail_min  # noqa: B018 (computed here, at warm-up, not by the first visitor)
    key = _overlap_key(d.perturbations(embedder))
    key.setflags(write=False)
    return (null, family, np.asarray(agg.array("unit_embeddings", mmap=False)),
            np.asarray(agg.array("embeddings", mmap=False)), key)


def configure(settings: Any) -> None:
    """Called once by create_app: the screens served (one store, or every store under
    ``settings.store_root``); pages read through get_data()."""
    global _settings
    _settings = settings
    screens.configure_registry(screens.ScreenRegistry.from_settings(settings) if settings is not None else None)
    _cached.cache_clear()


@memoize(16)
def _cached(store: str, run: str) -> PhenomixData:
    return PhenomixData(Path(store), run)


def get_data(screen: str | None = None) -> PhenomixData:
    """The data of ``screen`` (default: the screen the request being served is for, see
    phenomix_dash/screens.py; outside a request the default screen). Raises DataUnavailable with
    the reason when the screen is unknown, not the user's, or unavailable (a failed checksum)."""
    reg = screens.registry()
    if _settings is None or reg is None:
        raise DataUnavailable("the dashboard was not configured with an artifact store")
    try:
        name = screens.current_screen(reg, screen)
    except screens.ScreenError as err:
        raise DataUnavailable(str(err)) from None
    store = reg.stores[name]
    problem = screens.store_problem(store, reg.run)
    if problem is not None:
        raise DataUnavailable(f"screen {name!r} is unavailable: {problem}")
    return _cached(str(store), reg.run)
