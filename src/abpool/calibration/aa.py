"""An analysis's own calibration: how often would this design declare a false winner?

:func:`calibrate` simulates A/A experiments of the very design a result
analysed — the same arms, segments and users per cell — in which every arm of
a segment has the same true rate: the control's rate as the fitted model
estimates it (posterior median). Each simulated experiment is refitted with the
result's own model and settings, and its largest ``P(arm beats control)`` is
recorded. Then:

* the **false-winner rate** of a threshold ``t`` is the share of A/A
  experiments in which some arm reaches ``P(beats control) ≥ t``, with a 95%
  Wilson interval for its Monte Carlo error;
* the **calibrated threshold** is the smallest ``t`` that keeps the
  false-winner rate at or below 5%: the 95th percentile of the largest
  ``P(beats control)`` across experiments, with a 95% distribution-free
  interval from order statistics.

The variants model's exact engine refits in milliseconds; the segments model
is refitted by MCMC, about a second per experiment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import binom

from abpool._validation import check_int, check_probability, check_seed
from abpool.data import Cells
from abpool.result import Result, model_entry

DEFAULT_EXPERIMENTS = {"variants": 500}
FALLBACK_EXPERIMENTS = 100
TARGET_RATE = 0.05
MC_LEVEL = 0.95


def default_experiments(model: str) -> int:
    """A/A experiments :func:`calibrate` simulates by default for ``model``."""
    return DEFAULT_EXPERIMENTS.get(model, FALLBACK_EXPERIMENTS)


def _null_cells(result: Result, rng: np.random.Generator) -> Cells:
    """One A/A experiment of the result's design: every arm of a segment at that segment's control rate."""
    summary = result.summary()
    controls = summary[summary["is_control"]]["rate"].to_numpy()
    trials, _ = result._cell_counts()
    successes = rng.binomial(trials, controls[:, None])
    table = result.cells.table.copy()
    positions = {arm: k for k, arm in enumerate(result.arms)}
    segments = result.cells.segment_labels() if result.segmented else [None] * len(table)
    segment_index = {segment: s for s, segment in enumerate(result.segments or (None,))}
    rows = [segment_index[segment] for segment in segments]
    columns = [positions[arm] for arm in table["arm"]]
    table["successes"] = successes[rows, columns].astype(np.int64)
    # Valid by construction: the design's own cells, so no need to read them through DuckDB again.
    return dataclasses.replace(result.cells, table=table, source="simulation")


def calibrate(
    result: Result,
    *,
    experiments: int | None = None,
    threshold: float = 0.95,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Simulate A/A experiments of ``result``'s design and measure its false winners.

    Parameters
    ----------
    result : Result
        Any model's result; its model and settings refit every simulated experiment.
    experiments : int, optional
        A/A experiments to simulate (default 500 for the variants model, 100 otherwise).
    threshold : float
        The ``P(beats control)`` at which the team would call a winner.
    seed : int, optional
        Seed of the simulation (default: the result's).
    progress : callable, optional
        Called with 1 after each simulated experiment.

    Returns
    -------
    dict
        ``experiments``, ``threshold``, ``false_winner_rate`` and its
        ``false_winner_rate_ci``, ``calibrated_threshold`` and its
        ``calibrated_threshold_ci``, ``target_rate`` (0.05), ``truth`` and ``seed``.
    """
    experiments = check_int(
        default_experiments(result.model) if experiments is None else experiments,
        "experiments",
        minimum=20,
        hint=" (fewer cannot estimate a 5% rate)",
    )
    threshold = check_probability(threshold, "threshold", "0.95")
    seed = result.seed if seed is None else check_seed(seed)
    rng = np.random.default_rng([seed, 2])
    entry = model_entry(result.model)
    settings = {k: v for k, v in result.settings().items() if k in entry.options and k not in ("seed", "split")}
    settings["prior"] = result.prior
    if settings.get("engine") == "exact":
        # 4,000 independent draws put a probability near 0.95 within ±0.007: plenty for a 5% rate.
        settings["draws"] = min(int(settings["draws"]), 4_000)
    columns: dict[str, Any] = {"control": result.control}
    if result.segmented:
        columns["segment"] = list(result.cells.segment_columns)
    largest = np.empty(experiments)
    for k in range(experiments):
        cells = _null_cells(result, rng)
        fitted = entry.fit(cells, **columns, **settings, seed=int(rng.integers(2**31)), on_unconverged="ignore")
        beats = fitted.summary()["prob_beats_control"].to_numpy()
        largest[k] = np.nanmax(beats)
        if progress is not None:
            progress(1)
    from abpool.calibration.intervals import wilson_interval

    rate = float(np.mean(largest >= threshold))
    ordered = np.sort(largest)
    # Order statistics bracketing the 95th percentile with 95% confidence (distribution-free).
    low_rank = int(binom.ppf((1 - MC_LEVEL) / 2, experiments, 1 - TARGET_RATE))
    high_rank = int(binom.ppf((1 + MC_LEVEL) / 2, experiments, 1 - TARGET_RATE))
    calibrated = float(np.quantile(largest, 1 - TARGET_RATE, method="higher"))
    return {
        "experiments": experiments,
        "threshold": threshold,
        "false_winner_rate": rate,
        "false_winner_rate_ci": wilson_interval(rate, experiments, MC_LEVEL),
        "calibrated_threshold": calibrated,
        "calibrated_threshold_ci": [
            float(ordered[max(low_rank - 1, 0)]),
            float(ordered[min(high_rank, experiments - 1)]),
        ],
        "target_rate": TARGET_RATE,
        "truth": "A/A: every arm of a segment at the control's estimated rate (posterior median)",
        "seed": seed,
    }
