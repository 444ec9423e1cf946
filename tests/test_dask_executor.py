"""The embed stage on Dask (precompute.executors): the same stage keys and byte-identical embeddings
as a local run, wells back in the screen's order, and bad specs or an absent scheduler fail fast
with a message that names the value."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from precompute.artifacts import ArtifactStore
from precompute.executors import ExecutorSpec, PlateExecutor, parse_executor
from precompute.pipeline import run_pipeline
from precompute.run_config import RunConfig
from precompute.screen import load_screen
from precompute.stages.embed import embed_screen, stage_embed
from precompute.stages.ingest import stage_ingest
from precompute.stages.registry import Runner

REPO = Path(__file__).resolve().parents[1]
EMBEDDERS = ("random", "pixelstats", "mae")  # mae: the shipped models/mae_tiny_demo checkpoint
RANDOM = {"dim": 384, "seed": 0}


ENV_BEFORE_CLUSTER: dict[str, str] = {}


@pytest.fixture(scope="module")
def cluster():
    """dask-local:3 opened once for the module: starting a LocalCluster takes seconds here."""
    ENV_BEFORE_CLUSTER.update(os.environ)
    with PlateExecutor("dask-local:3") as ex:
        assert ex.map(abs, [(-1,)]) == [1]  # start it now, so later tests can read its address
        yield ex


def test_a_local_cluster_leaves_this_process_environment_alone(cluster):
    """Nannies set OPENBLAS_NUM_THREADS=1 & co. in the parent; kept, they made later stages
    (PCA, then UMAP) differ from a local run's."""
    now = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    assert now == {k: v for k, v in ENV_BEFORE_CLUSTER.items() if k != "PYTEST_CURRENT_TEST"}


def _embed_stages(screen_path: Path, store_root: Path, executor) -> dict[str, tuple[str, np.ndarray, dict]]:
    """Ingest + the embed stage of every embedder -> name: (stage key, embeddings, manifest info)."""
    screen = load_screen(screen_path)
    runner = Runner(ArtifactStore(store_root), progress=False)
    ingest = stage_ingest(runner, screen)
    out = {}
    for name in EMBEDDERS:
        key, _ = stage_embed(runner, screen, RunConfig(), ingest, name, executor=executor)
        stage = runner.store.open_stage("embed", key, verify=True)
        out[name] = (key, np.asarray(stage.array("embeddings", mmap=False)), stage.manifest["info"])
    return out


def test_dask_embeddings_are_byte_identical_to_local(tiny_screen, tmp_path, cluster):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Dask workers run torch on one thread; match it for the MAE
    try:
        local = _embed_stages(tiny_screen, tmp_path / "local", "local")
    finally:
        torch.set_num_threads(threads)
    on_dask = _embed_stages(tiny_screen, tmp_path / "dask", cluster)
    for name in EMBEDDERS:
        key_l, emb_l, info_l = local[name]
        key_d, emb_d, info_d = on_dask[name]
        assert key_l == key_d, f"{name}: the executor must not change the stage key"
        assert emb_l.dtype == emb_d.dtype == np.float32
        assert np.array_equal(emb_l, emb_d), f"{name}: embeddings differ between local and Dask"
        assert emb_l.tobytes() == emb_d.tobytes()
        assert (info_l["executor"], info_d["executor"]) == ("local", "dask-local:3")
    n = len(load_screen(tiny_screen).wells)
    assert all(emb.shape[0] == n for _, emb, _ in local.values())


def test_wells_come_back_in_table_order_when_plates_interleave(tiny_screen, tmp_path, cluster):
    """Plates interleaved in the wells table: each worker's rows land where the table has them."""
    shuffled = tmp_path / "shuffled"
    shutil.copytree(tiny_screen, shuffled)
    meta = pd.read_csv(shuffled / "metadata.csv")
    order = np.random.default_rng(0).permutation(len(meta))
    meta.iloc[order].to_csv(shuffled / "metadata.csv", index=False)
    original = load_screen(tiny_screen)
    screen = load_screen(shuffled)
    assert screen.wells["plate"].iloc[:10].nunique() > 1, "the shuffle interleaves plates"
    base = embed_screen(original, "random", RANDOM, 64, progress=False)
    for executor in ("local", cluster):
        emb = embed_screen(screen, "random", RANDOM, 64, executor=executor, progress=False)
        assert np.array_equal(emb, base[order])


def test_dask_address_runs_there_and_leaves_the_scheduler_running(tiny_screen, cluster):
    address = cluster.cluster.scheduler_address  # tcp://127.0.0.1:PORT
    spec = f"dask://{address.removeprefix('tcp://')}"
    screen = load_screen(tiny_screen)
    emb = embed_screen(screen, "random", RANDOM, 64, executor=spec, progress=False)
    assert np.array_equal(emb, embed_screen(screen, "random", RANDOM, 64, progress=False))
    assert cluster.map(abs, [(-2,)]) == [2], "closing a dask:// client must not shut the scheduler down"


@pytest.mark.parametrize("text, want", [
    ("local", ExecutorSpec("local")),
    (" local ", ExecutorSpec("local")),
    ("dask-local:3", ExecutorSpec("dask-local", workers=3)),
    ("dask://10.0.0.5:8786", ExecutorSpec("dask", address="tcp://10.0.0.5:8786")),
    ("dask://node-7.cluster:8786", ExecutorSpec("dask", address="tcp://node-7.cluster:8786")),
    ("dask://[::1]:8786", ExecutorSpec("dask", address="tcp://[::1]:8786")),
])
def test_parse_executor_accepts_the_three_forms(text, want):
    assert parse_executor(text) == want
    assert parse_executor(str(want)) == want  # str() is the canonical spec, recorded in manifests


@pytest.mark.parametrize("text", [
    "", "dask", "Local", "dask-local:0", "dask-local:\u00b3", "dask-local:-2", "dask-local:two", "dask-local:", "dask://",
    "dask://host", "dask://host:port", "dask://host:99999", "dask://:8786", "dask://host:8786/x",
    "tcp://host:8786", "slurm:4",
])
def test_bad_executor_specs_name_the_value_and_the_accepted_forms(text):
    with pytest.raises(ValueError) as err:
        parse_executor(text)
    assert repr(text) in str(err.value)
    assert "dask://HOST:PORT" in str(err.value) and "dask-local:N" in str(err.value)


def test_bad_executor_fails_before_anything_is_written(tiny_screen, tmp_path):
    store = tmp_path / "store"
    with pytest.raises(ValueError, match="dask:/x"):
        run_pipeline(tiny_screen, store, executor="dask:/x", progress=False)
    assert not store.exists()
    cmd = [sys.executable, "-m", "precompute", "run", "--screen", str(tiny_screen), "--store", str(store),
           "--executor", "dask-local:zero"]
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "dask-local:zero" in done.stderr and "dask://HOST:PORT" in done.stderr
    assert not store.exists()


def test_unreachable_scheduler_fails_fast_with_a_clear_error():
    with socket.socket() as s:  # a port nothing listens on: bind, read it, release it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as err, PlateExecutor(f"dask://127.0.0.1:{port}", connect_timeout=2) as ex:
        ex.map(abs, [(-1,)])
    assert time.monotonic() - t0 < 20, "a wrong address must fail within the timeout, not hang"
    assert f"127.0.0.1:{port}" in str(err.value) and "no Dask scheduler" in str(err.value)


def test_local_runs_never_import_dask(tiny_screen):
    code = (
        "import sys\n"
        "from precompute.screen import load_screen\n"
        "from precompute.stages.embed import embed_screen\n"
        f"embed_screen(load_screen({str(tiny_screen)!r}), 'random', {{'dim': 8, 'seed': 0}}, 64, progress=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
