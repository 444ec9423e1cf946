"""The artifact store: complete-or-absent stages, checksums, runs, and the lock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.artifacts import ArtifactError, ArtifactStore


def _write(store: ArtifactStore, key: str = "k1", fail: bool = False) -> None:
    with store.write_stage("embed", key, config={"a": 1}, inputs={}, code_version="t") as w:
        w.save_array("embeddings", np.arange(12, dtype=np.float32).reshape(4, 3))
        w.save_table("wells", pd.DataFrame({"well_id": list("abcd")}))
        if fail:
            raise RuntimeError("killed mid-stage")


def test_stage_is_complete_only_after_its_manifest(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    with pytest.raises(RuntimeError):
        _write(store, fail=True)
    assert not store.is_complete("embed", "k1")
    assert not list((tmp_path / "s").glob("embed-*")), "a failed stage leaves no directory that looks like one"
    _write(store)
    st = store.open_stage("embed", "k1", verify=True)
    assert st.manifest["rows"] == {"embeddings": 4, "wells": 4}
    assert st.array("embeddings").shape == (4, 3)
    assert isinstance(st.array("embeddings"), np.memmap), "the dashboard memory-maps arrays"


def test_corrupted_file_is_detected_and_named(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    _write(store)
    path = tmp_path / "s" / "embed-k1" / "embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="embeddings.npy: checksum mismatch"):
        store.open_stage("embed", "k1", verify=True)


def test_keys_change_with_config_inputs_and_code():
    base = ArtifactStore.stage_key("align", {"m": "tvn"}, {"embed": "x"}, "1")
    assert base == ArtifactStore.stage_key("align", {"m": "tvn"}, {"embed": "x"}, "1")
    assert base != ArtifactStore.stage_key("align", {"m": "centerscale"}, {"embed": "x"}, "1")
    assert base != ArtifactStore.stage_key("align", {"m": "tvn"}, {"embed": "y"}, "1")
    assert base != ArtifactStore.stage_key("align", {"m": "tvn"}, {"embed": "x"}, "2")


def test_second_writer_gets_a_clear_message(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    with store.lock():
        with pytest.raises(ArtifactError, match="another precompute run holds the store lock"):
            with ArtifactStore(tmp_path / "s").lock():
                pass


def test_runs_are_written_atomically_and_listed(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    store.set_run("default", {"stages": {"embed": "k1"}})
    assert store.run_names() == ["default"]
    assert store.get_run()["stages"]["embed"] == "k1"
    with pytest.raises(ArtifactError, match="no run named 'other'"):
        store.get_run("other")


def test_opening_a_missing_store_says_what_to_run(tmp_path):
    with pytest.raises(ArtifactError, match="python -m precompute run"):
        ArtifactStore(tmp_path / "nothing", create=False)
