"""Shared fixtures: a tiny generated screen and its artifact store, and headless Chromium options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from precompute.readers.common import shared_data_dir

os.environ.setdefault("OMP_NUM_THREADS", "2")

# CI clones the repository with ../shared beside it; PHENOMIX_SHARED overrides. Tests find the
# shared data through the code's own resolver, so both always look in the same place.
SHARED_DATA = shared_data_dir()
SHARED = SHARED_DATA.parent

# Browser tests serve the app on 8050, 8051, ... by default; PHENOMIX_TEST_PORT moves the first port
# so that two test runs on one machine (developers, parallel CI jobs) do not collide.
if os.environ.get("PHENOMIX_TEST_PORT"):
    from dash.testing.application_runners import BaseDashRunner

    BaseDashRunner._next_port = int(os.environ["PHENOMIX_TEST_PORT"])


def pytest_setup_options():
    """Chromium flags for dash_duo: root in a sandboxless container, no network, fixed size."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in (
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        raise RuntimeError(
            f"{SHARED_DATA}: the shared data folder must sit beside the repository (../shared) "
            "or be named by $PHENOMIX_SHARED"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_screen(tmp_path_factory) -> Path:
    """The generator's 'tiny' preset: a few seconds, images included."""
    from precompute.synth import SynthConfig, generate_screen

    out = tmp_path_factory.mktemp("screens") / "tiny"
    generate_screen(SynthConfig.preset("tiny"), out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_store(tiny_screen, tmp_path_factory) -> Path:
    """The full pipeline on the tiny screen, with the shipped MAE checkpoint."""
    from precompute.pipeline import RunConfig, run_pipeline

    store = tmp_path_factory.mktemp("stores") / "tiny"
    run_pipeline(tiny_screen, store, RunConfig(umap_neighbors=10), progress=False)
    return store


@pytest.fixture(scope="session")
def ckpt_store(tiny_store, tmp_path_factory) -> Path:
    """The tiny store with an MAE checkpoint named in its run (an untrained one if the run has none)."""
    import shutil

    import torch

    from precompute.artifacts import ArtifactStore
    from precompute.embed.checkpoint import save_checkpoint
    from precompute.embed.mae import ChannelAgnosticMAE
    from precompute.embed.mae_config import mae_tiny

    root = tmp_path_factory.mktemp("ckpt") / "store"
    shutil.copytree(tiny_store, root)
    st = ArtifactStore(root, create=False)
    run = st.get_run("default")
    if not run.get("checkpoint"):
        torch.manual_seed(0)
        cfg = mae_tiny(img_size=32)
        run["checkpoint"] = str(save_checkpoint(ChannelAgnosticMAE(cfg), cfg, root.parent / "mae"))
        st.set_run("default", run)
    return root


@pytest.fixture(scope="session")
def real_store(tmp_path_factory, shared_data) -> Path:
    """The built-in REAL screen (LINCS + JUMP-MOA profiles, shared data) through the pipeline: once per session."""
    from precompute.pipeline import RunConfig, run_pipeline
    from precompute.real_screen import build_real_screen

    root = tmp_path_factory.mktemp("real")
    screen = build_real_screen(root / "screen")
    run_pipeline(screen, root / "store", RunConfig(), progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def app_data(tiny_store):
    """The app built on the tiny store (pages registered) and its data reader, for in-process page tests."""
    from phenomix.settings import Settings
    from phenomix_dash import create_app
    from phenomix_dash.data import get_data

    create_app(Settings(store=tiny_store))
    return get_data()


@pytest.fixture(autouse=True)
def _blas_threads_put_back():
    """Undo a test's process-wide BLAS/OpenMP thread limit (importing app.py, the serving entry, sets
    one thread for the whole process): the tests after it must compute as a fresh process does, since
    the pipeline tests compare an in-process store with a subprocess rerun byte for byte, and float32
    sums (UMAP's start, the block top-k) round differently on another thread count."""
    from threadpoolctl import ThreadpoolController

    before = {lib.filepath: lib.num_threads for lib in ThreadpoolController().lib_controllers}
    yield
    for lib in ThreadpoolController().lib_controllers:
        n = before.get(lib.filepath)
        if n is not None and lib.num_threads != n:
            lib.set_num_threads(n)
