"""The mapping config of profile readers (overrides) and the report of what was mapped from where."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from precompute.readers.common import ReaderError, log

UNIT_TO_UM = {"uM": 1.0, "mM": 1000.0, "nM": 0.001}
_NAN_POLICIES = ("drop_all_nan_columns", "error", "drop_columns_with_nan")


@dataclass
class ProfileMapping:
    """Overrides for mapping a profile table; every field left None is chosen (and reported).

    Control rules are lists of ``{"column": ..., "values": [...]}``; when any rule list is given,
    only the rules decide the controls. ``compound_key='brd13'`` keys compounds by the first 13
    characters of Broad ids (``BRD-K12345678``), so salts and batches of one compound are
    replicates. ``concentration_unit`` is the unit of the concentration column's numbers.
    """

    plate: str | None = None
    well: str | None = None
    batch: str | None = None
    batch_value: str | None = None
    modality: str | None = None
    compound: str | None = None
    compound_key: str = "as_is"
    gene: str | None = None
    concentration: str | None = None
    concentration_unit: str = "uM"
    name: str | None = None
    negative_control: list[dict] | None = None
    positive_control: list[dict] | None = None
    drop: list[dict] | None = None
    feature_columns: list[str] | None = None
    nan_policy: str = "drop_all_nan_columns"
    keep_metadata: bool = True

    @classmethod
    def from_any(cls, cfg: None | dict | str | os.PathLike | ProfileMapping) -> ProfileMapping:
        """None, a dict, a JSON string, a path to a JSON file, or a ProfileMapping."""
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if isinstance(cfg, (str, os.PathLike)) and not str(cfg).lstrip().startswith("{"):
            p = Path(cfg)
            try:
                cfg = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ReaderError(f"{p}: cannot read the mapping config as JSON ({err})") from None
        elif isinstance(cfg, str):
            try:
                cfg = json.loads(cfg)
            except json.JSONDecodeError as err:
                raise ReaderError(f"mapping config: invalid JSON ({err})") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ReaderError(f"mapping config: unknown key(s) {unknown}; allowed: {sorted(known)}")
        out = cls(**cfg)
        if out.modality not in (None, "compound", "crispr", "orf"):
            raise ReaderError(f"mapping config: modality {out.modality!r} is not compound, crispr or orf")
        if out.concentration_unit not in UNIT_TO_UM:
            raise ReaderError(f"mapping config: concentration_unit {out.concentration_unit!r} is not one of {list(UNIT_TO_UM)}")
        if out.nan_policy not in _NAN_POLICIES:
            raise ReaderError(f"mapping config: nan_policy {out.nan_policy!r} is not one of {list(_NAN_POLICIES)}")
        if out.compound_key not in ("as_is", "brd13"):
            raise ReaderError(f"mapping config: compound_key {out.compound_key!r} is not 'as_is' or 'brd13'")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})}


@dataclass
class MappingReport:
    """How each contract column was obtained; printed, logged and saved with the screen."""

    source: str
    entries: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, column: str, how: str) -> None:
        self.entries[column] = how

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_text(self) -> str:
        lines = [f"mapping of {self.source}:"]
        lines += [f"  {k:<18} <- {v}" for k, v in self.entries.items()]
        lines += ["  counts: " + ", ".join(f"{k}={v}" for k, v in self.counts.items())] if self.counts else []
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "entries": dict(self.entries), "notes": list(self.notes), "counts": dict(self.counts)}

    def log(self) -> None:
        log.info("%s", self.to_text())
