"""What is known about a pair of perturbations: the screen's ground-truth annotations (relationship
pairs, compound targets, complexes), read once per process, answer "is this pair known?" for the
neighbour tables and the heatmap overlays."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable, PhenomixData

GENETIC_TYPES = ("crispr", "orf")


def entity_name(row: pd.Series | dict) -> str:
    """The annotation key of an entity: gene symbol for CRISPR/ORF, compound id for compounds."""
    if row["perturbation_type"] in GENETIC_TYPES:
        g = row.get("gene")
        return str(g) if isinstance(g, str) and g else str(row["perturbation"])
    return str(row["perturbation"])


@dataclass(frozen=True)
class Annotations:
    """Ground-truth tables shipped with the screen, each possibly empty.

    relationships: entity1, entity2, source (gene pairs). targets: compound, gene, source.
    complexes: gene -> complex name.
    """

    relationships: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["entity1", "entity2", "source"]))
    targets: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["compound", "gene", "source"]))
    complexes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_data(cls, d: PhenomixData) -> Annotations:
        def get(name: str) -> pd.DataFrame | None:
            try:
                return d.ground_truth(name)
            except DataUnavailable:
                return None

        rel, tgt, genes = get("relationships"), get("compound_targets"), get("genes")
        complexes: dict[str, str] = {}
        if genes is not None and {"gene", "complex"} <= set(genes.columns):
            complexes = dict(zip(genes["gene"].astype(str), genes["complex"].astype(str), strict=True))
        kw = {}
        if rel is not None:
            kw["relationships"] = rel[["entity1", "entity2", "source"]].astype(str)
        if tgt is not None:
            kw["targets"] = tgt[["compound", "gene", "source"]].astype(str)
        return cls(complexes=complexes, **kw)

    @property
    def complex_names(self) -> list[str]:
        return sorted(set(self.complexes.values()))

    def genes_in_complex(self, name: str) -> list[str]:
        return sorted(g for g, c in self.complexes.items() if c == name)

    @cached_property
    def _rel_sorted(self) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
        """Both directions of every pair as integer gene codes, sorted by the first gene: a look-up
        is a binary search. Integer codes sort ~50x faster than strings, which matters for the
        millions of StringDB pairs (done once per process)."""
        r = self.relationships
        codes, uniques = pd.factorize(pd.concat([r["entity1"], r["entity2"]], ignore_index=True))
        n = len(r)
        a = np.concatenate([codes[:n], codes[n:]])
        b = np.concatenate([codes[n:], codes[:n]])
        src_codes, src_names = pd.factorize(r["source"])
        src = np.concatenate([src_codes, src_codes])
        order = np.argsort(a, kind="stable")
        code_of = {g: i for i, g in enumerate(uniques)}
        return code_of, a[order], b[order], np.asarray(src_names, dtype=object)[src[order]]

    @cached_property
    def _targets_by_compound(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for c, g in zip(self.targets["compound"], self.targets["gene"], strict=True):
            out.setdefault(c, set()).add(g)
        return out

    @cached_property
    def _compounds_by_gene(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for c, g in zip(self.targets["compound"], self.targets["gene"], strict=True):
            out.setdefault(g, set()).add(c)
        return out

    def partners(self, gene: str) -> dict[str, set[str]]:
        """Genes annotated with ``gene`` in any relationship source -> the sources."""
        code_of, a, b, src = self._rel_sorted
        code = code_of.get(gene)
        if code is None:
            return {}
        lo, hi = np.searchsorted(a, code, side="left"), np.searchsorted(a, code, side="right")
        names = self._gene_names
        out: dict[str, set[str]] = {}
        for other, s in zip(b[lo:hi], src[lo:hi], strict=True):
            out.setdefault(names[other], set()).add(s)
        return out

    @cached_property
    def _gene_names(self) -> list[str]:
        code_of = self._rel_sorted[0]
        names = [""] * len(code_of)
        for g, i in code_of.items():
            names[i] = g
        return names

    def targets_of(self, compound: str) -> set[str]:
        return self._targets_by_compound.get(compound, set())

    def compounds_targeting(self, gene: str) -> set[str]:
        return self._compounds_by_gene.get(gene, set())

    def pair_flags(self, a: pd.Series | dict, b: pd.Series | dict) -> list[str]:
        """Short labels for what is known about entities a and b (empty when nothing is)."""
        return self.flags_against(a, [b])[0]

    def flags_against(self, query: pd.Series | dict, others: list) -> list[list[str]]:
        """pair_flags of one query against many entities, with the query's look-ups done once."""
        qa = entity_name(query)
        q_gen = query["perturbation_type"] in GENETIC_TYPES
        q_cmp = query["perturbation_type"] == "compound"
        partners = self.partners(qa) if q_gen else {}
        q_targets = self.targets_of(qa) if q_cmp else set()
        q_targeted_by = self.compounds_targeting(qa) if q_gen else set()
        out = []
        for o in others:
            name = entity_name(o)
            o_gen = o["perturbation_type"] in GENETIC_TYPES
            o_cmp = o["perturbation_type"] == "compound"
            flags: list[str] = []
            if q_gen and o_gen:
                if name == qa:
                    flags.append("same gene")
                flags += sorted(partners.get(name, ()))
                cx = self.complexes.get(qa)
                if cx is not None and cx == self.complexes.get(name) and name != qa:
                    flags.append(f"same complex ({cx})")
            elif q_gen and o_cmp and name in q_targeted_by:
                flags.append("compound target")
            elif q_cmp and o_gen and name in q_targets:
                flags.append("compound target")
            elif q_cmp and o_cmp and name != qa:
                shared = q_targets & self.targets_of(name)
                if shared:
                    flags.append("shared target " + ", ".join(sorted(shared)[:3]))
            out.append(flags)
        return out


@memoize(4, store=True)
def annotations(d: PhenomixData) -> Annotations:
    """The screen's annotations, read once per process."""
    return Annotations.from_data(d)
