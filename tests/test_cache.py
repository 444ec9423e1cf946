"""The dashboard's one cache (phenomix_dash/cache.py): per-key locks, bounds, the shared disk tier,
keys that hold the store's identity."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phenomix_dash import cache
from phenomix_dash.cache import memoize, store_identity


@pytest.fixture()
def disk(tmp_path, monkeypatch):
    """A fresh shared tier for the test; the previous one is restored afterwards."""
    monkeypatch.setattr(cache, "_disk", None)
    monkeypatch.setattr(cache, "_disk_dir", None)
    return cache.configure_disk(tmp_path / "dashcache")


class _Reader:
    """What the cache reads of a PhenomixData: its store path, run name and run index."""

    def __init__(self, store_root, stages: dict, finished: str = "t0") -> None:
        self.store_root, self.run_name, self.run = store_root, "default", {"stages": stages, "finished": finished}


def _fake_store(root: Path, stages: dict, finished: str = "t0") -> _Reader:
    return _Reader(root, stages, finished)


def test_two_keys_compute_at_the_same_time():
    spans: dict[int, tuple[float, float]] = {}

    @memoize(8)
    def slow(k: int) -> int:
        start = time.monotonic()
        time.sleep(0.3)
        spans[k] = (start, time.monotonic())
        return k

    threads = [threading.Thread(target=slow, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = spans[1], spans[2]
    assert a0 < b1 and b0 < a1, "two different keys waited for each other"


def test_one_key_computes_once_under_eight_concurrent_callers():
    calls = []
    barrier = threading.Barrier(8)

    @memoize(8)
    def slow(k: int) -> np.ndarray:
        calls.append(k)
        time.sleep(0.2)
        return np.arange(k)

    results = []

    def caller() -> None:
        barrier.wait()
        results.append(slow(5))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [5] and len(results) == 8
    assert all(r is results[0] for r in results) and not results[0].flags.writeable
    info = slow.cache_info()
    assert info.misses == 1 and info.hits == 7


def test_a_hit_takes_no_lock_while_the_same_function_computes_another_key():
    started, release = threading.Event(), threading.Event()

    @memoize(8)
    def f(k: int) -> int:
        if k == 2:
            started.set()
            release.wait(5)
        return k

    f(1)
    t = threading.Thread(target=f, args=(2,))
    t.start()
    started.wait(5)
    t0 = time.monotonic()
    assert f(1) == 1
    assert time.monotonic() - t0 < 0.5
    release.set()
    t.join()


def test_memory_tier_is_bounded_and_least_recently_used_goes_first():
    calls = []

    @memoize(3)
    def f(k: int) -> int:
        calls.append(k)
        return k

    for k in (1, 2, 3):
        f(k)
    f(1)  # 1 is now the most recently used
    f(4)  # evicts 2
    assert f.cache_info().currsize == 3
    f(1), f(3), f(4)
    assert calls == [1, 2, 3, 4]
    f(2)
    assert calls == [1, 2, 3, 4, 2]
    with pytest.raises(ValueError, match="maxsize"):
        memoize(0)(lambda: None)


def test_an_exception_is_not_cached():
    calls = []

    @memoize(4)
    def f(k: int) -> int:
        calls.append(k)
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return k

    with pytest.raises(RuntimeError):
        f(1)
    assert f(1) == 1 and calls == [1, 1]


def test_frames_are_handed_out_as_shallow_copies():
    @memoize(4)
    def table() -> pd.DataFrame:
        return pd.DataFrame({"a": [1, 2]})

    t = table()
    t["b"] = 0  # a caller adding a column does not change what the next caller gets
    assert list(table().columns) == ["a"]


def test_key_holds_the_store_identity_so_a_rebuilt_store_is_a_miss(tmp_path, disk):
    calls = []

    @memoize(8, store=True, disk=True)
    def stat(d, k: int) -> int:
        calls.append(k)
        return k * 10

    old = _fake_store(tmp_path / "store", {"embed": {"mae": "key-1"}})
    same = _fake_store(tmp_path / "store", {"embed": {"mae": "key-1"}})
    rebuilt = _fake_store(tmp_path / "store", {"embed": {"mae": "key-2"}})
    rerun = _fake_store(tmp_path / "store", {"embed": {"mae": "key-1"}}, finished="t1")
    other = _fake_store(tmp_path / "elsewhere", {"embed": {"mae": "key-1"}})
    assert store_identity(old) == store_identity(same) != store_identity(rebuilt)
    assert stat(old, 1) == stat(same, 1) == 10 and calls == [1]
    for d in (rebuilt, rerun, other):
        stat(d, 1)
    assert calls == [1, 1, 1, 1]


def test_disk_tier_is_shared_by_two_cache_objects_on_one_folder(tmp_path, disk):
    calls = []

    def compute(d, k: int) -> dict:
        calls.append(k)
        return {"figure": [k] * 3}

    d = _fake_store(tmp_path / "store", {"ingest": "abc"})
    first = memoize(4, store=True, disk=True)(compute)
    assert first(d, 2) == {"figure": [2, 2, 2]}
    cache.configure_disk(tmp_path / "elsewhere")  # another Cache object ...
    cache._disk = None
    cache.configure_disk(tmp_path / "dashcache")  # ... then a new one on the first folder
    assert cache.disk_cache() is not disk
    second = memoize(4, store=True, disk=True)(compute)  # a second worker's copy of the function
    assert second(d, 2) == {"figure": [2, 2, 2]} and calls == [2]
    assert second.cache_info().disk_hits == 1


_CHILD = """
import sys
from phenomix_dash import cache
cache.configure_disk(sys.argv[1])

def costly(d, k):
    print("computed", flush=True)
    return {"k": k}

costly.__module__, costly.__qualname__ = "tests.shared", "costly"
f = cache.memoize(4, store=True, disk=True)(costly)
class Reader:
    store_root, run_name, run = sys.argv[2], "default", {"stages": {"ingest": "abc"}}

d = Reader()
assert f(d, 3) == {"k": 3}
"""


def test_disk_tier_is_shared_between_two_processes(tmp_path):
    folder, store = tmp_path / "dashcache", tmp_path / "store"
    root = Path(__file__).resolve().parents[1]
    outs = [subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(store)], cwd=root, check=True,
                           capture_output=True, text=True, timeout=120).stdout for _ in range(2)]
    assert outs == ["computed\n", ""], "the second process computed again instead of reading the first one's result"


def test_a_forked_child_does_not_wait_for_a_key_its_parent_was_computing():
    import os

    started, release = threading.Event(), threading.Event()

    @memoize(4)
    def slow(k: int) -> int:
        if threading.current_thread() is not threading.main_thread():
            started.set()
            release.wait(10)
        return k

    t = threading.Thread(target=slow, args=(1,))
    t.start()
    started.wait(5)
    pid = os.fork()  # while the thread holds key 1's lock
    if pid == 0:
        os._exit(0 if slow(1) == 1 else 1)  # without fresh locks this would block forever
    release.set()
    t.join()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the forked child waited for a lock held by a thread it does not have")


def test_a_result_the_disk_tier_cannot_keep_is_still_served(tmp_path, disk):
    @memoize(4, disk=True)
    def unpicklable(k: int):
        return lambda: k  # lambdas do not pickle

    assert unpicklable(1)() == 1 and unpicklable(1)() == 1
    assert unpicklable.cache_info().misses == 1


def test_a_key_another_process_is_computing_is_awaited_not_recomputed(disk, monkeypatch):
    """Workers share what is expensive: while another process holds the claim on a key, this one
    waits for that process's result on disk instead of computing it too."""
    monkeypatch.setattr(cache, "CLAIM_POLL_S", 0.01)
    calls = []

    @memoize(4, disk=True)
    def costly(k: int) -> int:
        calls.append(k)
        return k * 10

    dkey = costly.disk_key(costly.key(3))
    disk.add(cache._claim_key(dkey), 999_999, expire=60)  # "another worker" is computing key 3
    got = []
    waiter = threading.Thread(target=lambda: got.append(costly(3)))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive() and not calls  # waiting, not computing
    disk.set(dkey, 30)  # the other worker's result arrives
    disk.delete(cache._claim_key(dkey))
    waiter.join(5)
    assert got == [30] and calls == [] and costly.cache_info().disk_hits == 1


def test_a_claim_given_up_without_a_result_lets_the_waiter_compute(disk, monkeypatch):
    monkeypatch.setattr(cache, "CLAIM_POLL_S", 0.01)

    @memoize(4, disk=True)
    def costly(k: int) -> int:
        return k + 1

    dkey = costly.disk_key(costly.key(5))
    disk.add(cache._claim_key(dkey), 999_999, expire=0.3)  # a worker killed while computing
    t0 = time.monotonic()
    assert costly(5) == 6 and costly.cache_info().misses == 1
    assert time.monotonic() - t0 < 5
    assert cache._claim_key(dkey) not in disk  # this process's own claim is released
    assert disk.get(dkey) == 6
