"""Where precompute's per-plate work runs: in this process, or on a Dask cluster.

Embedding a whole screen is the one stage too big for a single machine (images of a 384-well
plate are tens of GB; a real screen has thousands of plates), and a plate is a natural unit of
work: its wells are read from one folder and its embeddings are small. So the embed stage hands
one function call per plate to an executor, named by a spec string:

- ``local``: every plate in this process, one after another (the default, today's behaviour).
- ``dask://HOST:PORT``: an existing Dask scheduler (e.g. one started on a SLURM or Kubernetes
  cluster, see docs/cluster.md); the scheduler is left running afterwards.
- ``dask-local:N``: a throwaway ``distributed.LocalCluster`` of N single-threaded worker
  processes on this machine, closed afterwards (tests, and CPU embedding on a many-core machine;
  its workers all see the same GPUs, so several GPUs want one ``dask worker`` each, docs/cluster.md).

The executor decides only *where* the work runs, never *what* it computes, so it is not part of
any stage key: the same store serves runs made with any executor.

Dask is imported only when a dask executor is used, so a local run never pays for (or needs) it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

ACCEPTED_FORMS = "'local', 'dask://HOST:PORT' (an existing Dask scheduler) or 'dask-local:N' (N worker processes here)"
# How long to wait for a remote scheduler to answer: long enough for a busy scheduler, short enough
# that a wrong address fails the run with a clear message instead of appearing to hang.
DEFAULT_CONNECT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed ``--executor`` value. ``str(spec)`` gives it back in canonical form (recorded in
    the embed stage's manifest so one can tell where a stage was computed)."""

    kind: Literal["local", "dask", "dask-local"]
    address: str | None = None  # "tcp://host:port" for kind "dask"
    workers: int | None = None  # process count for kind "dask-local"

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    def __str__(self) -> str:
        if self.kind == "dask":
            return "dask://" + str(self.address).removeprefix("tcp://")
        if self.kind == "dask-local":
            return f"dask-local:{self.workers}"
        return "local"


def parse_executor(value: str | ExecutorSpec) -> ExecutorSpec:
    """``local`` / ``dask://HOST:PORT`` / ``dask-local:N`` -> ExecutorSpec; anything else raises a
    ValueError naming the value and the accepted forms (before the pipeline writes anything)."""
    if isinstance(value, ExecutorSpec):
        return value
    text = str(value).strip()

    def bad(why: str) -> ValueError:
        return ValueError(f"executor {value!r}: {why}; expected {ACCEPTED_FORMS}")

    if text == "local":
        return ExecutorSpec("local")
    if text.startswith("dask-local:"):
        count = text.removeprefix("dask-local:")
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise bad("the worker count must be a whole number of at least 1")
        return ExecutorSpec("dask-local", workers=int(count))
    if text.startswith("dask://"):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:  # port not a number, or out of 0-65535
            port = None
        if not parts.hostname or not port or parts.path not in ("", "/") or parts.query or parts.username:
            raise bad("give the scheduler as dask://HOST:PORT, e.g. dask://10.0.0.5:8786")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 keeps its brackets
        return ExecutorSpec("dask", address=f"tcp://{host}:{port}")
    raise bad("unknown executor")


def executor_spec(executor: str | ExecutorSpec | PlateExecutor) -> ExecutorSpec:
    """The spec of an executor given in any of the forms the functions here accept."""
    return executor.spec if isinstance(executor, PlateExecutor) else parse_executor(executor)


class PlateExecutor:
    """An executor opened once and reused for every map: a pipeline run embeds with several
    embedders, and starting a LocalCluster (seconds) or reconnecting for each would waste that
    time and the workers' cached screen and models. The Dask client is made on the first map, so
    a run whose embed stages are all cached never starts a cluster.

    Closing closes only what this object opened: a ``dask://`` scheduler belongs to whoever
    started it (and may serve other runs), so it is left running.
    """

    def __init__(self, executor: str | ExecutorSpec = "local", *,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        self.spec = parse_executor(executor)
        self.connect_timeout = connect_timeout
        self.cluster: Any = None  # the LocalCluster of a dask-local executor, once started
        self.client: Any = None

    def __enter__(self) -> PlateExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            with _environ_kept():  # a nanny restarting a worker meanwhile has set them again
                cluster.close()

    def map(self, fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], *, kwargs: dict[str, Any] | None = None,
            progress: bool = True, desc: str = "plates") -> list[T]:
        """``[fn(*args, **kwargs) for args in calls]``, run by the executor, results in ``calls`` order.

        ``fn`` must be a top-level (importable, picklable) function so Dask workers can run it; the
        local executor calls the very same function in this process, which is what makes local and
        Dask results identical. Workers need the same code and package versions as this process.
        """
        kw = dict(kwargs or {})
        if self.spec.is_local:
            return [fn(*args, **kw) for args in calls]
        from distributed import as_completed
        from tqdm.auto import tqdm

        client = self._client()
        # pure=False: every call is its own task even when arguments repeat (no silent dedup).
        futures = [client.submit(fn, *args, pure=False, **kw) for args in calls]
        try:
            with tqdm(total=len(futures), desc=desc, disable=not progress, unit="plate") as bar:
                for done in as_completed(futures, loop=client.loop):
                    if done.status == "error":
                        done.result()  # re-raise the worker's exception now, not after every other plate
                    bar.update(1)
            return [f.result() for f in futures]
        except BaseException:
            client.cancel(futures)  # on an error or Ctrl-C leave no work queued on a shared scheduler
            raise

    def _client(self) -> Any:
        if self.client is not None:
            return self.client
        try:
            from distributed import Client, LocalCluster
        except ImportError as err:
            raise RuntimeError(f"executor {self.spec}: the 'distributed' package is not installed ({err}); "
                               "pip install -r requirements.txt") from None
        if self.spec.kind == "dask-local":
            # One thread per process: the embedders hold the GIL (numpy, pure Python) or bring their own
            # threads (torch), so parallelism comes from processes. No dashboard: nothing binds :8787.
            with _environ_kept():
                self.cluster = LocalCluster(n_workers=self.spec.workers, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster, set_as_default=False)
            return self.client
        try:
            self.client = Client(self.spec.address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as err:  # refused, unreachable, or no answer in time
            raise ConnectionError(
                f"executor {self.spec}: no Dask scheduler answered at {self.spec.address} within "
                f"{self.connect_timeout:g} s ({err}); start one (`dask scheduler`, see docs/cluster.md) "
                "or fix the address"
            ) from None
        return self.client


@contextmanager
def _environ_kept() -> Iterator[None]:
    """Undo the environment changes a LocalCluster's nannies make in *this* process.

    Before spawning a worker a nanny writes OPENBLAS_NUM_THREADS=1, MKL_NUM_THREADS=1,
    OMP_NUM_THREADS=1 (unless set), PYTHONHASHSEED... into os.environ of the parent and leaves them
    there. A BLAS loaded afterwards by a later stage (scipy's, via sklearn's PCA) then runs on one
    thread and sums in another order: the project stage's UMAP came out different from a local
    run's, bit for bit. The workers get the variables; this process keeps its own.
    """
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def map_plates(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]],
               executor: str | ExecutorSpec | PlateExecutor = "local", **options: Any) -> list[T]:
    """One-off :meth:`PlateExecutor.map`; given an open PlateExecutor, maps on it and leaves it open."""
    if isinstance(executor, PlateExecutor):
        return executor.map(fn, calls, **options)
    with PlateExecutor(executor) as ex:
        return ex.map(fn, calls, **options)
