"""The artifact store: the contract between precompute and the dashboard.

Layout::

    STORE.json                      # format marker and version
    {stage}-{key}/                  # one directory per completed stage output
        manifest.json               # written LAST: config, inputs, versions, timings, checksums
        *.npy | *.parquet | *.json  # the outputs
    runs/{name}.json                # which stage keys make up a named run (e.g. 'default')
    .lock                           # held by a running precompute

A stage directory is complete only when its manifest exists: outputs are written into a
temporary sibling and renamed into place after the manifest, so a crash never leaves a half
stage that looks done. The key hashes the stage's config, its inputs' keys and its code version,
so a changed parameter or upstream result can never be served from an old directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

STORE_FORMAT = "phenomix-store"
STORE_VERSION = 1
MANIFEST = "manifest.json"
_PACKAGES = ("numpy", "pandas", "scikit-learn", "torch", "umap-learn", "copairs")


class ArtifactError(RuntimeError):
    """A store problem the user must see: missing stage, corrupt file, concurrent run."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hash of a JSON-able object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class StageWriter:
    """Collects one stage's outputs in a temporary folder; `ArtifactStore.write_stage` commits it."""

    tmp: Path
    stage: str
    rows: dict[str, int] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def save_array(self, name: str, arr: np.ndarray, dtype: str | None = None) -> Path:
        """Save as .npy (memory-mappable by the dashboard); dtype e.g. 'float16' is recorded."""
        arr = np.asarray(arr if dtype is None else np.asarray(arr).astype(dtype))
        path = self.tmp / f"{name}.npy"
        np.save(path, arr)
        self.rows[name] = int(arr.shape[0]) if arr.ndim else 1
        self.dtypes[name] = str(arr.dtype)
        return path

    def save_table(self, name: str, df: pd.DataFrame) -> Path:
        path = self.tmp / f"{name}.parquet"
        df.to_parquet(path, index=False)
        self.rows[name] = len(df)
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
        return path

    def path(self, name: str) -> Path:
        """A path for any other file the stage writes itself (e.g. a model checkpoint folder)."""
        return self.tmp / name


@dataclass
class Stage:
    """A completed stage directory, read-only."""

    path: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        return self.manifest["key"]

    def _file(self, name: str) -> Path:
        p = self.path / name
        if not p.exists():
            raise ArtifactError(f"{p}: listed output missing from stage {self.manifest['stage']!r}")
        return p

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        return np.load(self._file(f"{name}.npy"), mmap_mode="r" if mmap else None)

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self._file(f"{name}.parquet"), columns=columns)

    def json(self, name: str) -> Any:
        return json.loads(self._file(f"{name}.json").read_text())

    def has(self, name: str) -> bool:
        return any((self.path / f"{name}{ext}").exists() for ext in (".npy", ".parquet", ".json", ""))

    def verify(self) -> None:
        """Check every file against the checksum in the manifest; name the first bad file."""
        for rel, digest in self.manifest.get("checksums", {}).items():
            p = self.path / rel
            if not p.exists():
                raise ArtifactError(f"{p}: missing (stage {self.manifest['stage']!r} is corrupt)")
            if file_sha256(p) != digest:
                raise ArtifactError(f"{p}: checksum mismatch, the file was changed or truncated after it was written")


class ArtifactStore:
    """A folder of completed stages plus named runs."""

    def __init__(self, root: str | os.PathLike, *, create: bool = True) -> None:
        self.root = Path(root)
        marker = self.root / "STORE.json"
        if marker.exists():
            info = json.loads(marker.read_text())
            if info.get("format") != STORE_FORMAT:
                raise ArtifactError(f"{marker}: not a Phenomix artifact store")
            if info.get("version", 0) > STORE_VERSION:
                raise ArtifactError(f"{marker}: store version {info['version']} is newer than this Phenomix ({STORE_VERSION})")
        elif create:
            self.root.mkdir(parents=True, exist_ok=True)
            # The store may hold pickled caches later; keep it private to the user.
            os.chmod(self.root, 0o700)
            write_json_atomic(marker, {"format": STORE_FORMAT, "version": STORE_VERSION})
        else:
            raise ArtifactError(f"{self.root}: no artifact store here (run `python -m precompute run` first)")

    # -- keys and lookups -------------------------------------------------
    @staticmethod
    def stage_key(stage: str, config: dict[str, Any], inputs: dict[str, str], code_version: str) -> str:
        return stable_hash({"stage": stage, "config": config, "inputs": inputs, "code": code_version})

    def stage_dir(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}"

    def is_complete(self, stage: str, key: str) -> bool:
        return (self.stage_dir(stage, key) / MANIFEST).exists()

    def open_stage(self, stage: str, key: str, *, verify: bool = False) -> Stage:
        d = self.stage_dir(stage, key)
        m = d / MANIFEST
        if not m.exists():
            raise ArtifactError(f"{d}: stage {stage!r} is not complete (no manifest)")
        stage_obj = Stage(d, json.loads(m.read_text()))
        if verify:
            stage_obj.verify()
        return stage_obj

    # -- writing ------------------------------------------------------------
    @contextmanager
    def write_stage(
        self, stage: str, key: str, *, config: dict[str, Any], inputs: dict[str, str], code_version: str
    ) -> Iterator[StageWriter]:
        """Yield a writer into a temporary folder; on success write the manifest and rename."""
        final = self.stage_dir(stage, key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stage}-{key}.tmp-", dir=self.root))
        writer = StageWriter(tmp, stage)
        started = time.time()
        try:
            yield writer
            checksums = {
                str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            manifest = {
                "stage": stage,
                "key": key,
                "config": config,
                "inputs": inputs,
                "code_version": code_version,
                "packages": package_versions(),
                "started": started,
                "seconds": round(time.time() - started, 3),
                "rows": writer.rows,
                "dtypes": writer.dtypes,
                "info": writer.info,
                "checksums": checksums,
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            trash = None
            if final.exists():  # a stale incomplete dir with this key (no manifest) or a forced redo
                # Move the old directory aside in one rename, so a reader sees either the old
                # complete stage or the new one, never a manifest whose files are being deleted.
                trash = self.root / f".trash-{stage}-{key}-{os.getpid()}"
                os.replace(final, trash)
            os.replace(tmp, final)
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def clean_temporaries(self) -> int:
        """Remove leftovers of crashed writers (temporary stage folders); returns how many."""
        n = 0
        for p in self.root.glob(".*.tmp-*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            n += 1
        for p in self.root.glob(".trash-*"):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
        return n

    # -- runs ---------------------------------------------------------------
    def set_run(self, name: str, run: dict[str, Any]) -> None:
        write_json_atomic(self.root / "runs" / f"{name}.json", run)

    def get_run(self, name: str = "default") -> dict[str, Any]:
        p = self.root / "runs" / f"{name}.json"
        if not p.exists():
            raise ArtifactError(f"{p}: no run named {name!r} in this store (run `python -m precompute run`)")
        return json.loads(p.read_text())

    def run_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "runs").glob("*.json"))

    # -- concurrency ----------------------------------------------------------
    @contextmanager
    def lock(self, timeout: float = 0.0) -> Iterator[None]:
        """Exclusive lock for a precompute run; a second run gets a clear message."""
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise ArtifactError(
                f"{self.root}: another precompute run holds the store lock; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            lock.release()
