"""Running calibration studies: simulate experiments, apply every rule, score them, in parallel."""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool._validation import check_int
from abpool.calibration.designs import Design
from abpool.calibration.intervals import wilson_interval
from abpool.calibration.rules import CLASSICAL_RULES, SCORES, RuleSettings, bayes_claims, classical_claims, score_claims
from abpool.errors import InvalidArgumentError

MC_LEVEL = 0.95


# ----------------------------------------------------------------- experiments
def experiment_seeds(design: Design, experiments: int, seed: int) -> list[np.random.SeedSequence]:
    """One independent seed sequence per experiment (see "Seeds" in the module notes)."""
    experiments = check_int(experiments, "experiments", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    return np.random.SeedSequence(seed, spawn_key=design.seed_key).spawn(experiments)


def _draw_experiment(
    design: Design, seed_seq: np.random.SeedSequence
) -> tuple[NDArray[np.float64], NDArray[np.int64], int]:
    """True rates, successes and fit seed of one experiment."""
    rng = np.random.default_rng(seed_seq)
    rates = design.draw_truth(rng)
    successes = design.simulate(rng, rates)
    return rates, successes, int(rng.integers(2**31))


def make_experiments(design: Design, experiments: int, seed: int) -> pd.DataFrame:
    """The simulated data of a study, one row per (experiment, cell).

    The same experiments :func:`run_study` analyses with the same ``seed``.

    Examples
    --------
    >>> from abpool.calibration import SegmentsDesign, VariantsDesign
    >>> design = VariantsDesign(arms=2, trials=50, base_rate=0.3, effect=0.1)
    >>> frame = make_experiments(design, experiments=3, seed=7)
    >>> frame.columns.tolist()
    ['experiment', 'arm', 'trials', 'successes', 'true_rate']
    >>> frame["true_rate"].tolist()
    [0.3, 0.4, 0.3, 0.4, 0.3, 0.4]
    >>> make_experiments(SegmentsDesign(segments=2, trials=50, base_rate=0.3), 1, seed=7).columns.tolist()
    ['experiment', 'segment', 'arm', 'trials', 'successes', 'true_rate']
    """
    frames = []
    for k, seed_seq in enumerate(experiment_seeds(design, experiments, seed)):
        rates, successes, _ = _draw_experiment(design, seed_seq)
        frames.append(
            pd.DataFrame(
                {
                    "experiment": k,
                    **design.labels(),
                    "trials": design.cell_trials(),
                    "successes": successes,
                    "true_rate": rates,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def evaluate_experiment(
    design: Design, settings: RuleSettings, successes: NDArray[np.int64], fit_seed: int, rates: NDArray[np.float64]
) -> tuple[NDArray[np.int64], bool, bool]:
    """Apply every rule to one experiment whose true cell rates are ``rates``.

    Returns
    -------
    scores : numpy.ndarray
        Shape ``(rules, len(SCORES))``.
    refused : bool
        The model refused the data (the Bayesian rules claimed nothing).
    warned : bool
        The fit returned with a diagnostic warning.
    """
    i, j = design.comparisons()
    trials = design.cell_trials()
    truth = np.sign(rates[i] - rates[j]).astype(np.int8)
    claims: list[NDArray[np.int8]] = []
    fit = design.posterior_draws(successes, prior=settings.prior, draws=settings.draws, seed=fit_seed)
    for threshold in settings.thresholds:
        bounds = [None] if settings.loss_bound is None else [None, settings.loss_bound]
        for bound in bounds:
            if fit is None:
                claims.append(np.zeros(i.size, dtype=np.int8))
            else:
                claims.append(bayes_claims(fit[0], i, j, threshold, bound))
    classical = classical_claims(successes, trials, i, j, settings.alpha)
    claims.extend(classical[rule] for rule in CLASSICAL_RULES)
    return score_claims(np.stack(claims), truth), fit is None, bool(fit is not None and fit[1])


def _run_chunk(
    design: Design,
    settings: RuleSettings,
    seeds: Sequence[np.random.SeedSequence],
    progress: Callable[[int], None] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    scores = []
    flags = []
    # statsmodels' Holm adjustment calls gc.collect() on every call, which scans
    # every live object (tens of milliseconds with pandas and scipy loaded);
    # freezing the long-lived objects first makes each collection cheap.
    gc.freeze()
    try:
        for seed_seq in seeds:
            rates, successes, fit_seed = _draw_experiment(design, seed_seq)
            score, refused, warned = evaluate_experiment(design, settings, successes, fit_seed, rates)
            scores.append(score)
            flags.append((refused, warned))
            if progress:
                progress(1)
    finally:
        gc.unfreeze()
    return np.stack(scores), np.array(flags, dtype=bool)


# --------------------------------------------------------------------- results
@dataclass(frozen=True)
class StudyResult:
    """The outcome of a calibration study for one design.

    Attributes
    ----------
    design, settings
        What was simulated and which rules were applied.
    seed : int
        Study seed.
    scores : numpy.ndarray
        Shape ``(experiments, rules, len(SCORES))``: per-experiment counts.
    refused : numpy.ndarray
        Per experiment: the model refused the data (Bayesian rules claimed nothing).
    warned : numpy.ndarray
        Per experiment: the fit returned with a diagnostic warning.
    """

    design: Design
    settings: RuleSettings
    seed: int
    scores: NDArray[np.int64]
    refused: NDArray[np.bool_]
    warned: NDArray[np.bool_]

    @property
    def experiments(self) -> int:
        return int(self.scores.shape[0])

    @property
    def true_differences(self) -> int | float:
        """Comparisons whose cells truly differ: a count, or its mean when experiments differ."""
        counts = self.scores[:, 0, SCORES.index("true_differences")]
        return int(counts[0]) if np.all(counts == counts[0]) else float(counts.mean())

    def metrics(self) -> list[dict[str, Any]]:
        """One record per rule: error rates, power and their Monte Carlo intervals.

        Power and the wrong-sign rate are taken over the experiments that have a
        true difference (all of them, or none, in the designs of this module).
        """
        n = self.experiments
        design = {k: v for k, v in self.design.describe().items() if k != "true_rates"}
        records = []
        for r, rule in enumerate(self.settings.rule_names):
            claims, false, wrong, correct, n_diff = (self.scores[:, r, k] for k in range(len(SCORES)))
            real = n_diff > 0
            n_real = int(real.sum())
            values: dict[str, tuple[float | None, int]] = {
                "family_wise_error": (float(np.mean(false > 0)), n),
                "false_discovery_rate": (float(np.mean(false / np.maximum(claims, 1))), n),
                "power": (float(np.mean(correct[real] / n_diff[real])) if n_real else None, n_real),
                "wrong_sign_rate": (float(np.mean(wrong[real] > 0)) if n_real else None, n_real),
            }
            record: dict[str, Any] = {"rule": rule, **design, "experiments": n}
            for name, (value, size) in values.items():
                record[name] = value
                record[f"{name}_ci"] = None if value is None else wilson_interval(value, size)
            record["any_claim_rate"] = float(np.mean(claims > 0))
            record["mean_claims"] = float(np.mean(claims))
            records.append(record)
        return records

    def describe(self) -> dict[str, Any]:
        """Design, comparison counts and fit problems of the study."""
        i, _ = self.design.comparisons()
        return {
            **self.design.describe(),
            "comparisons": int(i.size),
            "true_differences": self.true_differences,
            "experiments": self.experiments,
            "refused_fits": int(self.refused.sum()),
            "fits_with_warnings": int(self.warned.sum()),
        }


def available_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _chunks(n: int, workers: int) -> list[slice]:
    # A few chunks per worker balance the load; the cap keeps progress updates frequent.
    size = int(min(100, max(1, math.ceil(n / (4 * workers)))))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def run_studies(
    designs: Sequence[Design],
    settings: RuleSettings | None = None,
    *,
    experiments: int,
    seed: int,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[StudyResult]:
    """Run one calibration study per design, in parallel over experiments.

    Parameters
    ----------
    designs : sequence of Design
        The truths to simulate (e.g. :class:`VariantsDesign` with 2, 4, 8 arms),
        all of one kind (variants or segments).
    settings : RuleSettings, optional
        Rules to apply (default: ``bayes_p95`` and the classical rules, with the
        designs' model).
    experiments : int
        Simulated experiments per design.
    seed : int
        Study seed; the result does not depend on ``workers``.
    workers : int, optional
        Worker processes (default: every available core for variants designs;
        1 for segments designs, whose sampler already uses every core). 1 runs
        in this process.
    progress : callable, optional
        Called with the number of experiments just finished.

    Returns
    -------
    list of StudyResult
        In the order of ``designs``.
    """
    if not designs:
        raise InvalidArgumentError("give at least one design (e.g. a number of arms) to study")
    kinds = {design.kind for design in designs}
    if len(kinds) > 1:
        raise InvalidArgumentError(f"a study holds designs of one kind, got {', '.join(sorted(kinds))}")
    kind = kinds.pop()
    settings = settings or RuleSettings(model=kind)
    if settings.model != kind:
        raise InvalidArgumentError(f"the rule settings fit the {settings.model} model but the designs are {kind}")
    if workers is None:
        workers = 1 if kind == "segments" else available_workers()
    workers = check_int(workers, "workers", minimum=1)
    seeds = [experiment_seeds(design, experiments, seed) for design in designs]
    parts: list[list[tuple[slice, tuple[NDArray, NDArray]]]] = [[] for _ in designs]
    tasks = [(d, part) for d in range(len(designs)) for part in _chunks(experiments, workers)]
    if workers == 1:
        # In this process progress is reported per experiment: segments fits take a second each.
        for d, part in tasks:
            parts[d].append((part, _run_chunk(designs[d], settings, seeds[d][part], progress)))
    else:
        methods = multiprocessing.get_all_start_methods()
        # Not fork: a parent holding threads (a progress bar) can deadlock forked children.
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures: dict[Future, tuple[int, slice]] = {
                pool.submit(_run_chunk, designs[d], settings, seeds[d][part]): (d, part) for d, part in tasks
            }
            for future in as_completed(futures):
                d, part = futures[future]
                parts[d].append((part, future.result()))
                if progress:
                    progress(part.stop - part.start)
    results = []
    for d, design in enumerate(designs):
        ordered = [chunk for _, chunk in sorted(parts[d], key=lambda item: item[0].start)]
        flags = np.concatenate([f for _, f in ordered])
        results.append(
            StudyResult(
                design=design,
                settings=settings,
                seed=int(seed),
                scores=np.concatenate([s for s, _ in ordered]),
                refused=flags[:, 0],
                warned=flags[:, 1],
            )
        )
    return results


def run_study(
    design: Design,
    settings: RuleSettings | None = None,
    *,
    experiments: int,
    seed: int,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> StudyResult:
    """Run a calibration study for one design (see :func:`run_studies`)."""
    return run_studies([design], settings, experiments=experiments, seed=seed, workers=workers, progress=progress)[0]
