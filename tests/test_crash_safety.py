"""Crash safety beyond tests/test_pipeline.py: what the dashboard sees while precompute is killed,
two runs on one store, and corrupted artifacts named rather than served."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phenomix_dash import data as dash_data
from phenomix_dash.data import DataUnavailable, PhenomixData
from precompute.artifacts import ArtifactError, ArtifactStore

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _stage_paths(node, prefix=()):
    """Every (stage, name...) path the run index names, e.g. ('align', 'random', 'tvn')."""
    if isinstance(node, str):
        yield prefix
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _stage_paths(v, prefix + (k,))


def check_store_as_a_reader(root: Path) -> int:
    """What a dashboard process can see: the run index and every stage it names open and verify,
    and every folder named like a stage is complete and intact. Returns the stages checked."""
    d = PhenomixData(root)
    n = 0
    for path in _stage_paths(d.run["stages"]):
        dash_data._verify.cache_clear()  # verify again on every pass, not once per process
        d.stage(*path)
        n += 1
    store = ArtifactStore(root, create=False)
    for p in root.iterdir():
        if p.name.startswith(".") or p.name in ("runs", "STORE.json") or "-" not in p.name:
            continue
        stage, key = p.name.split("-", 1)
        store.open_stage(stage, key, verify=True)  # raises for a folder without manifest or a bad file
        n += 1
    return n


def test_reader_sees_only_complete_stages_while_runs_are_killed(tiny_store, tiny_screen, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    failures: list[str] = []
    passes = [0]
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                check_store_as_a_reader(store)
                passes[0] += 1
            except (DataUnavailable, ArtifactError, OSError, ValueError) as err:
                failures.append(f"{type(err).__name__}: {err}")

    def n_stages() -> int:
        return sum(1 for p in store.iterdir() if (p / "manifest.json").exists())

    before = n_stages()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    # --tvn-fallback pooled changes the TVN key: new align/aggregate/relate stages are written
    # next to the ones the run index names, and each run is killed somewhere in the middle.
    cmd = [sys.executable, "-m", "precompute", "run", "--screen", str(tiny_screen), "--store", str(store),
           "--embedder", "random", "--embedder", "pixelstats", "--tvn-fallback", "pooled", "--quiet"]
    try:
        for delay in (1.0, 2.5, 4.0, 6.0, 9.0):
            proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        stop.set()
        t.join(timeout=60)
    assert not failures, failures[:3]
    assert passes[0] >= 5, "the reader kept reading while the writers were killed"
    assert n_stages() > before, "the killed runs completed some new stages in between"
    assert check_store_as_a_reader(store) > 0


def _wait_for(pred, timeout: float = 60.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_second_run_on_one_store_gets_the_lock_message(tiny_screen, tmp_path):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "precompute", "run", "--screen", str(tiny_screen), "--store", str(store),
           "--embedder", "random", "--embedder", "pixelstats", "--quiet"]
    first = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # A temporary stage folder exists only while a run that holds the lock writes a stage.
        assert _wait_for(lambda: store.exists() and any(store.glob(".*.tmp-*"))), "first run never started a stage"
        second = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "another precompute run holds the store lock" in last
    # The store is intact: every stage folder is complete and matches its checksums, and the
    # lock died with the killed process.
    store_obj = ArtifactStore(store, create=False)
    for p in store.iterdir():
        if not p.name.startswith(".") and "-" in p.name:
            store_obj.open_stage(*p.name.split("-", 1), verify=True)
    with store_obj.lock():
        pass


# -- corrupted artifacts, through the dashboard's reader -------------------------------------------
@pytest.fixture
def small_store(tmp_path) -> Path:
    root = tmp_path / "store"
    store = ArtifactStore(root)
    wells = pd.DataFrame({"well_id": ["a", "b", "c"], "plate": ["P1"] * 3, "batch": ["B1"] * 3})
    with store.write_stage("ingest", "k0", config={}, inputs={}, code_version="t") as w:
        w.save_table("wells", wells)
    with store.write_stage("embed", "k1", config={}, inputs={"ingest": "k0"}, code_version="t") as w:
        w.save_array("embeddings", np.arange(30, dtype=np.float32).reshape(3, 10))
    store.set_run("default", {"stages": {"ingest": "k0", "embed": {"x": "k1"}}, "primary": {"embedder": "x"}})
    return root


def _flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_intact_store_is_served(small_store):
    d = PhenomixData(small_store)
    assert list(d.wells["well_id"]) == ["a", "b", "c"]
    assert d.well_embeddings("raw", "x").shape == (3, 10)


def test_truncated_array_is_named_not_served(small_store):
    path = small_store / "embed-k1" / "embeddings.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataUnavailable, match=r"embed-k1/embeddings.npy: checksum mismatch.*--force embed"):
        PhenomixData(small_store).well_embeddings("raw", "x")


def test_edited_table_is_named_not_served(small_store):
    _flip_byte(small_store / "ingest-k0" / "wells.parquet", 40)
    with pytest.raises(DataUnavailable, match=r"ingest-k0/wells.parquet: checksum mismatch"):
        _ = PhenomixData(small_store).wells


def test_deleted_file_is_named(small_store):
    (small_store / "embed-k1" / "embeddings.npy").unlink()
    with pytest.raises(DataUnavailable, match=r"embeddings.npy: missing"):
        PhenomixData(small_store).well_embeddings("raw", "x")


def test_a_page_shows_the_corruption_as_a_message(small_store):
    """The overview page of a store whose wells table was edited: a message, not a traceback."""
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    _flip_byte(small_store / "ingest-k0" / "wells.parquet", 40)
    create_app(Settings(store=small_store))
    from phenomix_dash.pages import overview

    out = overview.layout()
    assert "wells.parquet: checksum mismatch" in str(out.to_plotly_json())


def test_forced_rewrite_of_a_stage_is_never_seen_half_deleted(tmp_path, monkeypatch):
    root = tmp_path / "s"
    store = ArtifactStore(root)

    def write() -> None:
        with store.write_stage("embed", "k1", config={}, inputs={}, code_version="t") as w:
            for name in ("a", "b", "c"):
                w.save_array(name, np.arange(6, dtype=np.float32))

    write()
    seen: list[str] = []
    real_rmtree = shutil.rmtree

    def slow_rmtree(path, *args, **kwargs):
        """Delete data files before the manifest (an order rmtree may use); look after each one."""
        path = Path(path)
        if path.is_dir():
            for f in sorted(path.iterdir(), key=lambda p: p.name == "manifest.json"):
                if f.is_file():
                    f.unlink()
                    try:
                        store.open_stage("embed", "k1", verify=True)
                    except ArtifactError as err:
                        if "not complete" not in str(err):
                            seen.append(str(err))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", slow_rmtree)
    write()  # the --force redo of the same key
    assert not seen, f"a reader saw a partial stage: {seen[0]}"
