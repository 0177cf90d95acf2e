"""Many experiments at once: one table in, one results table, one report per experiment and an index page out.

:func:`analyze_batch` reads a table with an experiment column (unit rows or
aggregated cells; :mod:`abpool.batch.source`), fits every experiment with the
model its columns call for (segments with ``segment``, means with ``value``, a
scorecard of several metrics with ``metrics``, else variants) on the chosen
engine (:mod:`abpool.batch.run`) and writes, under ``out``:

* ``results.parquet``: one row per experiment × (segment or metric ×) arm in the shared
  vocabulary, with ``status`` (ok, unconverged, refused), ``reason``, the
  decision, the SRM flag, diagnostics, prior, seed, data fingerprint and
  abpool's version — a refused experiment has one row with its reason;
* ``experiments/<key>/``: each experiment's saved run (draws, JSON, report), and
  ``experiments/<key>.json``, its record, written last;
* ``index.html``: every experiment with its headline decision, SRM flag and
  convergence, linking to its report.

Incremental: an experiment whose data fingerprint and settings are unchanged
is not refitted (``force=True`` refits), so a batch that was killed resumes
where it stopped and a daily refresh refits only what changed.

Examples
--------
>>> import tempfile, pandas as pd
>>> table = pd.DataFrame({"experiment": ["e1"] * 2 + ["e2"] * 2, "arm": ["A", "B"] * 2,
...                       "trials": [1000, 1000, 500, 500], "successes": [100, 130, 50, 48]})
>>> done = analyze_batch(table, experiment="experiment", out=tempfile.mkdtemp(), seed=1)
>>> done.statuses()["status"].tolist()
['ok', 'ok']
>>> round(done.result("e1").prob_beats_control("B"), 2)
0.97
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from abpool._validation import check_int, check_seed
from abpool.api import choose_model
from abpool.batch.index import write_index
from abpool.batch.rows import METRICS, REFUSED
from abpool.batch.run import (
    Engine,
    Task,
    experiment_key,
    experiment_seed,
    fit_experiment,
    settings_key,
    stored_record,
)
from abpool.batch.source import ExperimentsRead, read_experiments, read_metric_experiments, read_moment_experiments
from abpool.batch.writeback import check_target, write_results
from abpool.data import DataSource
from abpool.errors import InvalidArgumentError
from abpool.io import atomic_write, write_json
from abpool.store import remove_work_leftovers

RESULTS_FILE = "results.parquet"
# What a batch of several metrics accepts beside its own settings: each metric otherwise takes its model's defaults.
SCORECARD_OPTIONS = frozenset({"control", "ci", "split", "cap"})
# The batch's own settings (its seed): a rerun without --seed resumes with the same one.
BATCH_FILE = "batch.json"
INDEX_FILE = "index.html"
EXPERIMENTS_DIR = "experiments"


@dataclass
class BatchResult:
    """What a batch produced: the results table, each experiment's record, and where everything is.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per experiment × (segment ×) arm (see :mod:`abpool.batch`).
    records : list of dict
        One per experiment: ``experiment``, ``status``, ``reason``, ``headline``, ``srm_flagged``, ``seconds``.
    out : Path
    fitted, reused : int
        Experiments fitted in this run, and reused unchanged from an earlier one.
    seconds : float
    database_table : str or None
        Where the results table was also written in the source database, if asked.
    """

    table: pd.DataFrame
    records: list[dict[str, Any]]
    out: Path
    fitted: int = 0
    reused: int = 0
    seconds: float = 0.0
    database_table: str | None = None
    model: str = "variants"
    options: dict[str, Any] = field(default_factory=dict)
    _keep: Any = field(default=None, repr=False)

    def statuses(self) -> pd.DataFrame:
        """One row per experiment: ``experiment``, ``status``, ``reason``, ``headline``, ``srm_flagged``."""
        columns = ["experiment", "status", "reason", "headline", "srm_flagged"]
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in self.records], columns=columns)

    def result(self, experiment: str) -> Any:
        """The fitted result of one experiment: loaded from its saved run, or refitted when runs were not saved.

        A refit uses the experiment's cells, seed and options from its record,
        so it gives the same numbers as the batch did. In a batch of several
        metrics it is the experiment's :class:`~abpool.scorecard.Scorecard`,
        always refitted (its saved run is the report and JSON).
        """
        from abpool.data import Cells
        from abpool.data.metrics import MetricsData
        from abpool.data.moments import ArmMoments
        from abpool.store import load

        record = next((r for r in self.records if r["experiment"] == experiment), None)
        if record is None:
            names = ", ".join(repr(r["experiment"]) for r in self.records[:20])
            raise InvalidArgumentError(f"experiment must be one of {names}, got {experiment!r}")
        if record["status"] == REFUSED:
            raise InvalidArgumentError(f"experiment {experiment!r} was refused: {record['reason']}")
        run = self.out / EXPERIMENTS_DIR / experiment_key(experiment)
        if (run / "manifest.json").exists() or "cells" not in record:
            return load(run)
        # A continuous metric's record holds its per-arm moments; a scorecard's, every metric's data.
        kinds = {"moments": ArmMoments, "metrics": MetricsData}
        cells = kinds.get(record["cells"].get("kind"), Cells).from_record(record["cells"])
        return fit_experiment(self.model, cells, self.options, int(record["seed"]))

    @property
    def exit_code(self) -> int:
        """0 when every experiment was fitted and converged, 1 when some were refused or did not converge."""
        return 0 if all(r["status"] == "ok" for r in self.records) else 1


def analyze_batch(
    data: DataSource,
    *,
    experiment: str | None = None,
    out: str | Path | None = None,
    segment: str | Sequence[str] | None = None,
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    value: str | None = None,
    metrics: Sequence[str] | None = None,
    metric_column: str | None = None,
    primary: str | None = None,
    margins: dict[str, float] | None = None,
    lower_is_better: Sequence[str] = (),
    level: float | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
    seed: int | None = None,
    engine: str = "process",
    workers: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    reports: bool = True,
    runs: bool = True,
    database_table: str | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> BatchResult:
    """Fit every experiment of a table and write the results table, the runs and the index page.

    Parameters
    ----------
    data : DataFrame or path
        Unit rows or aggregated cells with an experiment column.
    experiment : str, optional
        The experiment column (default ``experiment``, ``experiment_id``, ``test`` or ``test_id``).
    out : str or Path, optional
        Output directory (default: a temporary one, kept while the result lives).
    segment, arm, outcome, trials, successes
        Column names, as for :func:`abpool.analyze`; with ``segment`` the segments model is fitted.
    value : str, optional
        A continuous metric's column of unit values: the means model is fitted
        to each experiment (``cap=0.99`` among the options caps each
        experiment at its own quantile). With ``metrics`` and
        ``metric_column``: the long table's value column.
    metrics : sequence of str, optional
        Several metrics per experiment (see :func:`abpool.analyze_metrics`):
        each experiment gets a scorecard, the first metric (or ``primary``)
        deciding and the others guardrails. Each metric's model is chosen once
        for the whole table (0/1 → variants, other numbers → means).
    metric_column, primary, margins, lower_is_better, level
        As for :func:`abpool.analyze_metrics`, the same for every experiment.
    table, query : str, optional
        With a DuckDB database file: its table, or a SQL query over it (see :func:`abpool.load_cells`).
    where : str, optional
        Only the rows meeting this DuckDB SQL condition, from a file or DuckDB database (``"country = 'DE'"``);
        from PostgreSQL, choose the rows with ``query``.
    seed : int, optional
        The batch's seed; each experiment's is derived from it and its name (chosen and recorded when omitted).
    engine : {"process", "pool", "dask"}
        Run fits in this process, on ``workers`` local processes, or on Dask.
    workers : int
        Processes for ``pool`` and for a local Dask cluster.
    scheduler : str, optional
        Dask: ``"local"`` (default) or a scheduler address such as ``tcp://host:8786``.
    force : bool
        Refit experiments even when their data and settings are unchanged.
    reports : bool
        Write each experiment's HTML report (the index links to it).
    runs : bool
        Save each experiment's run (draws, JSON and report). ``False`` keeps
        the results table, the index and one small record per experiment,
        several times faster; :meth:`BatchResult.result` then refits an
        experiment on demand, with the same numbers.
    database_table : str, optional
        Also write the results table into the source database (a DuckDB file
        or PostgreSQL) under this name, replacing only a table abpool wrote
        (see :mod:`abpool.batch.writeback`).
    progress : callable, optional
        Called with each experiment's record as it finishes (reused ones included).
    **options
        Model options, as for :func:`abpool.analyze_variants` or :func:`abpool.analyze_segments`
        (``control``, ``prior``, ``draws``, ``threshold`` …), the same for every experiment.
    """
    import tempfile

    start = time.perf_counter()
    if engine not in ("process", "pool", "dask"):
        raise InvalidArgumentError(f"engine must be one of process, pool, dask, got {engine!r}")
    workers = check_int(workers, "workers", minimum=1)
    if metrics is not None:
        model = METRICS
        settings = _scorecard_options(metrics, primary, margins, lower_is_better, level, segment, options)
    else:
        model = "means" if value is not None else choose_model(segment=segment)
        settings = _model_options(model, value, segment, outcome, trials, successes, metric_column, options)
        if primary is not None or margins or lower_is_better or level is not None:
            raise InvalidArgumentError(
                "primary, margins, lower_is_better and level are settings of several metrics; give metrics"
            )
    if database_table is not None:
        # Before any fit: a source that cannot hold the table should not cost a batch to find out.
        check_target(data, database_table)
    keep = None
    if out is None:
        keep = tempfile.TemporaryDirectory(prefix="abpool-batch-")
        out = keep.name
    out = Path(out)
    seed = _batch_seed(out, seed)
    directory = out / EXPERIMENTS_DIR
    with Engine(engine, workers, scheduler, saves_draws=runs) as runner:
        if force or next(directory.glob("*.json"), None) is None:
            # Nothing to reuse, so every experiment will be fitted: the workers start while the table is read.
            runner.start()
        # Where the rows are and which are kept: the same for every model's reader.
        rows: dict[str, Any] = {"experiment": experiment, "arm": arm, "table": table, "query": query, "where": where}
        if model == METRICS:
            found = read_metric_experiments(
                data,
                metrics=list(metrics or ()),
                metric_column=metric_column,
                value=value,
                cap=options.get("cap"),
                **rows,
            )
        elif model == "means":
            found = read_moment_experiments(data, value=value, cap=options.get("cap"), **rows)
        else:
            found = read_experiments(data, segment=segment, outcome=outcome, trials=trials, successes=successes, **rows)
        directory.mkdir(parents=True, exist_ok=True)
        remove_work_leftovers(directory)
        write_json(out / BATCH_FILE, {"seed": seed, "model": model, "source": found.source})
        records, tasks = _plan(found, model, settings, seed, directory, force=force, reports=reports, runs=runs)
        reused = len(records) - sum(1 for r in records.values() if r["status"] == REFUSED)
        for record in records.values():
            if progress is not None:
                progress(record)
        for record in runner.run(tasks):
            records[record["experiment"]] = record
            if progress is not None:
                progress(record)
    ordered = [records[item.name] for item in found.experiments]
    table = results_table(ordered)
    atomic_write(out / RESULTS_FILE, lambda path: table.to_parquet(path, index=False))
    write_index(out / INDEX_FILE, ordered, directory, source=found.source, seed=seed, model=model)
    written = None if database_table is None else write_results(data, database_table, table)
    return BatchResult(
        table=table,
        records=ordered,
        out=out,
        fitted=len(tasks),
        reused=reused,
        seconds=time.perf_counter() - start,
        database_table=written,
        model=model,
        options=settings["fit"],
        _keep=keep,
    )


def _model_options(
    model: str,
    value: str | None,
    segment: Any,
    outcome: str | None,
    trials: str | None,
    successes: str | None,
    metric_column: str | None,
    options: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """One model's batch settings: ``fit`` (its options) and ``key`` (what a stored record must match)."""
    from abpool.result import model_entry

    if metric_column is not None:
        raise InvalidArgumentError("metric_column names a long table's metrics; give metrics too")
    if value is not None and (segment or outcome or trials or successes):
        raise InvalidArgumentError(
            "value names a continuous metric, fitted by the means model without segments; leave out segment, "
            "outcome, trials and successes"
        )
    unknown = sorted(set(options) - model_entry(model).options - {"control"})
    if unknown:
        raise InvalidArgumentError(f"{', '.join(unknown)} is not an option of the {model} model")
    return {"fit": options, "key": options}


def _scorecard_options(
    metrics: Sequence[str],
    primary: str | None,
    margins: dict[str, float] | None,
    lower_is_better: Sequence[str],
    level: float | None,
    segment: Any,
    options: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """A scorecard batch's settings, checked before any data is read: ``fit`` and ``key`` as for one model."""
    from abpool.scorecard import DEFAULT_LEVEL, scorecard_settings

    if segment:
        raise InvalidArgumentError("a batch of several metrics compares arms on whole experiments; leave out segment")
    unknown = sorted(set(options) - SCORECARD_OPTIONS)
    if unknown:
        raise InvalidArgumentError(
            f"{', '.join(unknown)} is not a setting of a batch of several metrics (each metric takes its model's "
            f"defaults); its settings are {', '.join(sorted(SCORECARD_OPTIONS))}"
        )
    checked = scorecard_settings(metrics, primary, margins, lower_is_better, DEFAULT_LEVEL if level is None else level)
    fit = {key: value for key, value in options.items() if key != "cap"} | checked
    # The metrics and the cap change what is read: a stored record is reused only when they match too.
    return {"fit": fit, "key": fit | {"metrics": list(metrics), "cap": options.get("cap")}}


def _plan(
    found: ExperimentsRead,
    model: str,
    settings: dict[str, dict[str, Any]],
    seed: int,
    directory: Path,
    *,
    force: bool,
    reports: bool,
    runs: bool,
) -> tuple[dict[str, dict[str, Any]], list[Task]]:
    """The records already known (refused experiments, unchanged ones from an earlier run) and the fits to run."""
    key = settings_key(model, settings["key"], seed)
    records: dict[str, dict[str, Any]] = {}
    tasks = []
    for item in found.experiments:
        if item.cells is None:
            records[item.name] = {"experiment": item.name, "status": REFUSED, "reason": item.refused, "rows": []}
            continue
        task = Task(
            item.name,
            item.cells,
            model,
            settings["fit"],
            experiment_seed(seed, item.name),
            directory,
            key,
            reports,
            runs,
        )
        stored = None if force else stored_record(task)
        if stored is None:
            tasks.append(task)
        else:
            records[item.name] = stored | {"reused": True}
    return records, tasks


def _batch_seed(out: Path, seed: int | None) -> int:
    """The seed given; else the seed an earlier run into ``out`` recorded (so a rerun resumes); else a new one."""
    if seed is None:
        try:
            seed = int(json.loads((out / BATCH_FILE).read_text(encoding="utf-8"))["seed"])
        except (OSError, ValueError, KeyError, TypeError):
            seed = None
    return check_seed(seed)


def results_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The results table: every fitted row, and one row with its reason for each refused experiment."""
    rows: list[dict[str, Any]] = []
    for record in records:
        if record["rows"]:
            rows += record["rows"]
        else:
            rows.append({"experiment": record["experiment"], "status": record["status"], "reason": record["reason"]})
    table = pd.DataFrame(rows)
    first = ["experiment", "status", "reason"]
    return table[first + [c for c in table.columns if c not in first]]


__all__ = ["BatchResult", "analyze_batch", "results_table"]
