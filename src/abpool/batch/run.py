"""Fitting a batch: one pure function per experiment, run in-process, on a process pool, or on Dask.

:func:`fit_task` fits one experiment, saves its run and writes its record
(``experiments/<key>.json``) last, atomically: a record on disk means the
experiment is done. It lives in this importable module so that process pools
and Dask workers import it (with their module-level caches) rather than
receive it pickled by value. Every engine runs the same function on the same
tasks with the same seeds, so the numbers do not depend on the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from abpool._version import __version__
from abpool.batch.rows import METRICS, OK, REFUSED, UNCONVERGED, experiment_outcome
from abpool.data import Cells
from abpool.errors import AbpoolError
from abpool.io import to_jsonable, write_json
from abpool.tuning import tune_process

ENGINES = ("process", "pool", "dask")
# Experiments sent to a pool worker at once: a fast fit costs little more than its round trip through the
# pool's queues, so up to this many travel together, fewer as the batch nears its end (see chunks).
MAX_CHUNK = 8
CHUNKS_PER_WORKER = 4


def experiment_seed(seed: int, name: str) -> int:
    """The seed of one experiment: fixed by the batch's seed and the experiment's name, whatever runs it.

    Examples
    --------
    >>> experiment_seed(1, "checkout") == experiment_seed(1, "checkout") != experiment_seed(2, "checkout")
    True
    """
    state = np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8"))]).generate_state(1)[0]
    return int(state) % 2**31


def experiment_key(name: str) -> str:
    """A file name for an experiment: readable, and unique (a short hash of the exact name).

    Examples
    --------
    >>> experiment_key("Checkout / mobile")
    'Checkout-mobile-39e819ad'
    """
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40] or "experiment"
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def settings_key(model: str, options: dict[str, Any], seed: int) -> str:
    """What a stored record must match to be reused: model, options, batch seed and abpool's version."""
    payload = json.dumps(to_jsonable({"model": model, "options": options, "seed": seed, "version": __version__}))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """One experiment to fit: its cells, the model and options, its seed and where its outputs go."""

    name: str
    cells: Cells
    model: str
    options: dict[str, Any]
    seed: int
    directory: Path
    settings: str
    report: bool = True
    # False: only the record (with the cells, to refit on demand); no draws, JSON or report on disk.
    save_run: bool = True

    @property
    def record_path(self) -> Path:
        return self.directory / f"{experiment_key(self.name)}.json"

    @property
    def run_path(self) -> Path:
        return self.directory / experiment_key(self.name)


def _private_compile_directory() -> None:
    # Concurrent PyTensor compiles in one directory collide (pymc#7819): each worker process gets its own,
    # removed when the process ends, so a batch leaves no compiled modules behind in the temporary directory.
    # A worker started by a process that set its own directory inherits the flag: it sets another.
    mine = f"abpool_worker-{os.getpid()}-"
    flags = [flag for flag in os.environ.get("PYTENSOR_FLAGS", "").split(",") if flag]
    if any(mine in flag for flag in flags):
        return
    private = tempfile.mkdtemp(prefix=mine)
    kept = [flag for flag in flags if not (flag.startswith("compiledir=") and "abpool_worker-" in flag)]
    os.environ["PYTENSOR_FLAGS"] = ",".join([*kept, f"compiledir={private}"])
    remove_at_exit(private)


def remove_at_exit(directory: str) -> None:
    """Delete ``directory`` when this process ends: a main process, a pool's worker or a Dask worker.

    Pool workers end through ``os._exit`` after multiprocessing's own finalizers, which skips ``atexit``;
    the directory is registered with both.
    """
    import atexit
    import multiprocessing.util
    import shutil

    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    multiprocessing.util.Finalize(
        None, shutil.rmtree, args=(directory,), kwargs={"ignore_errors": True}, exitpriority=0
    )


def fit_experiment(model: str, cells: Any, options: dict[str, Any], seed: int) -> Any:
    """One experiment's fit: a registered model's result, or a scorecard when ``model`` is :data:`METRICS`.

    An unconverged fit is kept (and reported by its diagnostics); the batch marks it.
    """
    if model == METRICS:
        from abpool.scorecard import fit_metrics

        return fit_metrics(cells, **options, seed=seed, on_unconverged="ignore")
    from abpool.result import model_entry

    columns = {"segment": list(cells.segment_columns)} if cells.segment_columns else {}
    return model_entry(model).fit(cells, **columns, **options, seed=seed, on_unconverged="ignore")


def fit_task(task: Task) -> dict[str, Any]:
    """Fit one experiment, save its run, and write its record last; return the record.

    A bad setting or data the model refuses gives a ``refused`` record with the
    one-line reason; a fit that did not converge is kept, marked ``unconverged``.
    A scorecard's saved run is its report and JSON, so its record always keeps
    the cells it is refitted from.
    """
    _private_compile_directory()
    start = time.perf_counter()
    record: dict[str, Any] = {
        "experiment": task.name,
        "key": experiment_key(task.name),
        "settings": task.settings,
        "data_fingerprint": task.cells.fingerprint,
        "seed": task.seed,
    }
    try:
        result = fit_experiment(task.model, task.cells, task.options, task.seed)
        if task.save_run and task.model == METRICS:
            result.save(task.run_path, report=task.report)
        elif task.save_run:
            from abpool.store import save_result

            # The batch removed the leftovers of killed saves once, before its first fit.
            save_result(result, task.run_path, report=task.report, force=True, tidy=False)
        if not task.save_run or task.model == METRICS:
            record["cells"] = task.cells.to_record()
        record |= experiment_outcome(task.name, result)
    except AbpoolError as exc:
        record |= {"status": REFUSED, "reason": " ".join(str(exc).split()), "rows": []}
    record["seconds"] = round(time.perf_counter() - start, 3)
    # Read by abpool, not people (the results table and index show it): one line, written in C.
    write_json(task.record_path, record, indent=None)
    return record


def fit_tasks(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """Fit several experiments one after the other (one pool task); each record is still written as it finishes."""
    return [fit_task(task) for task in tasks]


def warm_up(saves_draws: bool = True) -> None:
    """Import and initialise what every fit needs: in a new worker, while the main process reads the table.

    The first xarray object of a process looks up xarray's optional backends
    (and imports dask when installed): a second that would otherwise delay the
    worker's first saved run. A batch that saves no draws (``--no-runs``)
    never builds one, and skips it.
    """
    _private_compile_directory()
    if saves_draws:
        import xarray as xr

        xr.DataTree.from_dict({"warm-up": xr.Dataset({"x": ("draw", [0.0])}, coords={"draw": [0]})})


def chunks(tasks: Sequence[Task], workers: int) -> list[Sequence[Task]]:
    """Split ``tasks`` into pool tasks: up to :data:`MAX_CHUNK` experiments, shrinking to one near the end.

    Each chunk holds a share of the tasks left after it, so the last ones are
    single experiments and the workers finish together.

    Examples
    --------
    >>> [len(chunk) for chunk in chunks(list(range(30)), 2)]
    [3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    >>> [len(chunk) for chunk in chunks(list(range(1000)), 2)][:3]
    [8, 8, 8]
    """
    found: list[Sequence[Task]] = []
    start = 0
    while start < len(tasks):
        size = max(1, min(MAX_CHUNK, (len(tasks) - start) // (workers * CHUNKS_PER_WORKER)))
        found.append(tasks[start : start + size])
        start += size
    return found


def stored_record(task: Task) -> dict[str, Any] | None:
    """The record a previous run wrote for this task, when its data and settings are unchanged."""
    try:
        record = json.loads(task.record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    unchanged = (
        record.get("settings") == task.settings
        and record.get("data_fingerprint") == task.cells.fingerprint
        and record.get("status") in (OK, UNCONVERGED)
        and _reusable_run(task, record)
    )
    return record if unchanged else None


def _reusable_run(task: Task, record: dict[str, Any]) -> bool:
    """Whether what the stored record's run left serves this task: its saved run, or its cells to refit from."""
    if task.model == METRICS:
        return "cells" in record and (not task.save_run or (task.run_path / "summary.json").exists())
    return (task.run_path / "manifest.json").exists() or (not task.save_run and "cells" in record)


@dataclass
class Engine:
    """Where the fits run: ``process`` (this process), ``pool`` (``workers`` local processes) or ``dask``.

    For Dask, ``scheduler`` is ``"local"`` (a LocalCluster with ``workers``
    single-threaded worker processes, started and stopped here) or the address
    of a running scheduler (``tcp://host:8786``). Use it as a context manager:
    a pool started early (:meth:`start`) is shut down on the way out.
    """

    kind: str = "process"
    workers: int = 1
    scheduler: str | None = None
    # Whether the fits save their draws (the workers' warm-up then prepares xarray).
    saves_draws: bool = True
    _pool: Any = field(default=None, init=False, repr=False)

    @property
    def pooled(self) -> bool:
        """Whether fits run on a local process pool."""
        return self.kind == "pool" and self.workers > 1

    def start(self) -> None:
        """Start the local pool's workers now, so they import and warm up while this process reads the table."""
        if not self.pooled or self._pool is not None:
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Spawned, not forked: a fork would copy this process's threads (nutpie's, DuckDB's) mid-flight.
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=tune_process)
        # A spawning pool starts a worker per task submitted while none is idle: one warm-up each starts them all.
        for _ in range(self.workers):
            self._pool.submit(warm_up, self.saves_draws)

    def close(self) -> None:
        """Shut the local pool down, if it was started: after an error, the fits not yet begun are dropped."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        """Run every task, yielding each record as its experiment finishes (in no fixed order)."""
        if not tasks:
            return
        if self.kind == "dask":
            yield from self._dask(tasks)
        elif self.pooled and len(tasks) > 1:
            from concurrent.futures import as_completed

            self.start()
            futures = [self._pool.submit(fit_tasks, chunk) for chunk in chunks(tasks, self.workers)]
            for future in as_completed(futures):
                yield from future.result()
        else:
            for task in tasks:
                yield fit_task(task)

    def _dask(self, tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise AbpoolError("the Dask engine needs the dask extra: pip install 'abpool[dask]'") from None
        cluster = None
        if self.scheduler in (None, "local"):
            cluster = LocalCluster(
                n_workers=max(1, self.workers), threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
            # Workers this batch started are its own processes, tuned as the pool's are.
            client.run(tune_process)
        else:
            try:
                client = Client(self.scheduler, timeout="10s")
            except OSError as exc:
                raise AbpoolError(
                    f"cannot reach the Dask scheduler {self.scheduler!r} ({exc}); check --scheduler"
                ) from None
        try:
            futures = client.map(fit_task, list(tasks), pure=False)
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
