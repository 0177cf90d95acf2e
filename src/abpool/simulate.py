"""Synthetic experiments and calibration studies of decision rules.

A calibration study simulates many experiments from a declared truth, applies
several decision rules to each, and counts how often each rule declares a
winner that is not there and how often it finds a real one.

Truth, variants (:class:`VariantsDesign`)
    ``arms`` variants with ``trials`` users each. Every arm's true rate is
    ``base_rate`` (an A/A study), except that with a non-zero ``effect`` the
    **last** ``effect_arms`` arms (default: only the last arm) have rate
    ``base_rate + effect``. Truly different pairs are therefore those with
    exactly one arm among the last ``effect_arms``. The truth is the same in
    every experiment.

Truth, segments (:class:`SegmentsDesign`)
    ``segments`` segments × (control, treatment), ``trials`` users per cell.
    Each experiment draws its own truth on the log-odds scale: segment ``s``
    has control logit ``a_s ~ Normal(logit(base_rate), base_rate_spread)``
    (default spread 0.2: at a base rate of 0.5, 95% of segments' control rates
    lie between 0.40 and 0.60) and treatment effect
    ``b_s ~ Normal(effect, effect_spread)``; the treatment rate is
    ``invlogit(a_s + b_s)``. ``effect = effect_spread = 0`` is the A/A study
    (every segment's treatment equals its control). The comparisons are
    "treatment beats control" within each segment.

Rules (all applied to every comparison ``(i, j)`` of the same experiment: every
pair of arms, or treatment against control in every segment)
    ``bayes_pXX``
        Fit the variants model (exact engine) or the segments model (nutpie
        NUTS) and claim "i beats j" when ``P(theta_i > theta_j) >= XX%``
        ("j beats i" when it is ``<= 1 - XX%``).
    ``bayes_pXX_lossL``
        The same, and the expected loss of choosing i over j,
        ``E[max(theta_j - theta_i, 0)]``, is below ``L``.
    ``uncorrected``, ``bonferroni``, ``holm``, ``bh``
        Two-sided two-proportion test of every pair (z-test, Fisher's exact
        test for small counts, :mod:`abpool.classical`); claim "i beats j" when
        the (adjusted) p-value is below ``alpha`` and the observed rate of i is
        higher. The family is every comparison of the experiment (every pair
        of arms; every segment's treatment-control test, as in
        :func:`abpool.classical.classical_comparisons`).

Scores (per experiment, per rule)
    A claim "i beats j" is *false* when truly ``theta_i <= theta_j``: either the
    rates are equal or the sign is wrong. Then, over the experiments:

    * ``family_wise_error``: share of experiments with at least one false claim;
    * ``false_discovery_rate``: mean over experiments of false claims / claims
      (0 when there is no claim);
    * ``power``: mean share of truly different pairs claimed with the right
      sign, over the experiments that have one (``None`` for A/A studies);
    * ``wrong_sign_rate``: share of experiments with at least one claim whose
      sign is opposite to a true difference (``None`` for A/A studies).

    Each comes with a 95% Monte Carlo interval: Wilson's score interval. For
    ``false_discovery_rate`` and ``power``, averages of per-experiment shares
    in [0, 1], the Wilson interval is conservative: such a mean has a variance of
    at most ``m (1 - m) / n``, the variance the interval assumes.

Seeds
    Experiment ``k`` of a design draws from
    ``SeedSequence(seed, spawn_key=design.seed_key).spawn(experiments)[k]``
    (``seed_key`` is ``(J,)`` for ``J`` arms, ``(S, 2)`` for ``S`` segments of two
    arms): the study does not depend on the number of workers or the chunking,
    and the 4-arm part of a 2/4/8-arm study is the 4-arm study run on its own.

Fits that fail their checks
    A fit the model refuses (variants model, improper posterior) makes no
    Bayesian claim and is counted in ``refused_fits``. A fit that returns but
    fails a diagnostic check (segments model: divergences, R-hat or effective
    sample size, after the automatic refit at a higher ``target_accept``) is
    counted in ``fits_with_warnings`` and its draws are still used, as a user
    reading the result despite the warning would; the count is reported with
    every study so its share can be judged.

Segments studies and speed
    The segments model's compiled form depends only on the number of segments
    and arms, so nutpie compiles it once per study and every experiment only
    refits it with new counts. Such studies run in one process: the sampler
    already runs its chains on all cores.

Examples
--------
>>> design = VariantsDesign(arms=3, trials=100, base_rate=0.5)
>>> study = run_study(design, experiments=20, seed=1, workers=1)
>>> [row["rule"] for row in study.metrics()]
['bayes_p95', 'bonferroni', 'holm', 'bh', 'uncorrected']
>>> study.metrics()[0]["power"] is None
True
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool.classical import adjust_p_values, pair_test
from abpool.data import Cells, _default_name
from abpool.errors import InvalidArgumentError, InvalidDataError
from abpool.priors import get_segments_prior, get_variants_prior

ALPHA = 0.05
CLASSICAL_RULES = ("bonferroni", "holm", "bh", "uncorrected")
# A few thousand independent draws put the Monte Carlo error of P(i > j) near a
# 95% threshold at about 0.003: negligible against the spread of P across
# experiments, and fits stay at milliseconds.
DEFAULT_DRAWS = 4_000
# Segments fits are MCMC. Measured on 8 segments × 1,000 users per cell: with
# 4 chains × 500 draws the effective sample size of mu_a (about 350) misses the
# convergence check (100 per chain) in most fits, which then refit at twice the
# cost; 4 × 1,000 draws after 500 tuning steps pass it (ESS 650-850) in about
# 1.3 s per refit of the compiled model.
SEGMENTS_DRAWS = 4_000
SEGMENTS_CHAINS = 4
SEGMENTS_TUNE = 500
# Spread (sd on the log-odds scale) of the segments' true control rates around logit(base rate).
BASE_RATE_SPREAD = 0.2
MODELS = ("variants", "segments")
MC_LEVEL = 0.95

# Per-experiment score columns, in the order of StudyResult.scores' last axis.
SCORES = ("claims", "false_claims", "wrong_sign_claims", "correct_claims", "true_differences")


# ------------------------------------------------------------------ validation
def _int_at_least(value: Any, low: int, name: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidArgumentError(f"{name} must be an integer of at least {low}{hint}, got {value!r}")
    return int(value)


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise InvalidArgumentError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    return value


def _probability(value: Any, name: str, example: str) -> float:
    value = _real(value, name)
    if not 0.0 < value < 1.0:
        raise InvalidArgumentError(f"{name} must be strictly between 0 and 1 (e.g. {example}), got {value!r}")
    return value


# --------------------------------------------------------------------- designs
class Design(Protocol):
    """What a calibration study needs to know about the truth it simulates.

    Implemented by :class:`VariantsDesign` (one cell per arm) and
    :class:`SegmentsDesign` (one cell per segment and arm).
    """

    kind: str
    size_key: str

    @property
    def seed_key(self) -> tuple[int, ...]:
        """Integers that, with the study seed, pick this design's random stream."""
        ...

    def labels(self) -> dict[str, list[str]]:
        """Label columns of the cells (e.g. ``{"arm": [...]}``), in cell order."""
        ...

    def draw_truth(self, rng: np.random.Generator) -> NDArray[np.float64]:
        """True success rate of every cell for one simulated experiment."""
        ...

    def cell_trials(self) -> NDArray[np.int64]:
        """Trials of every cell."""
        ...

    def comparisons(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Cell indices ``(i, j)`` of every comparison "cell i beats cell j"."""
        ...

    def simulate(self, rng: np.random.Generator, rates: NDArray[np.float64]) -> NDArray[np.int64]:
        """Successes of every cell for one simulated experiment whose true rates are ``rates``."""
        ...

    def posterior_draws(
        self, successes: NDArray[np.int64], settings: RuleSettings, seed: int
    ) -> tuple[NDArray[np.float64], bool] | None:
        """Posterior draws of the cell rates ``(draws, cells)`` and whether the fit warned; None if refused."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings of the design."""
        ...


@dataclass(frozen=True)
class VariantsDesign:
    """An A/B/n test: ``arms`` variants of ``trials`` users each.

    All arms share ``base_rate`` except the last ``effect_arms`` arms, whose
    true rate is ``base_rate + effect`` (an A/A study when ``effect`` is 0).

    Examples
    --------
    >>> VariantsDesign(arms=4, trials=100, base_rate=0.5, effect=0.05).true_rates().tolist()
    [0.5, 0.5, 0.5, 0.55]
    >>> VariantsDesign(arms=1, trials=100, base_rate=0.5)
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: arms must be an integer of at least 2 (an experiment compares arms), got 1
    """

    arms: int
    trials: int
    base_rate: float
    effect: float = 0.0
    effect_arms: int = 1
    kind: str = field(default="variants", init=False)
    size_key: str = field(default="arms", init=False)

    def __post_init__(self) -> None:
        _int_at_least(self.arms, 2, "arms", " (an experiment compares arms)")
        _int_at_least(self.trials, 1, "trials", " (users per arm)")
        base = _probability(self.base_rate, "base rate", "0.5")
        effect = _real(self.effect, "effect")
        if effect != 0.0 and not 0.0 < base + effect < 1.0:
            raise InvalidArgumentError(
                f"base rate + effect must be strictly between 0 and 1, got {base:g} + {effect:g} = {base + effect:g}"
            )
        if effect != 0.0 and not 1 <= _int_at_least(self.effect_arms, 1, "effect arms", "") < self.arms:
            raise InvalidArgumentError(
                f"effect arms must be between 1 and arms - 1 = {self.arms - 1} (some arms must keep the base rate), "
                f"got {self.effect_arms!r}"
            )

    @property
    def seed_key(self) -> tuple[int, ...]:
        return (int(self.arms),)

    @property
    def names(self) -> list[str]:
        """Arm labels A, B, C, …"""
        return [_default_name(k) for k in range(self.arms)]

    def labels(self) -> dict[str, list[str]]:
        return {"arm": self.names}

    def true_rates(self) -> NDArray[np.float64]:
        """True rate of every arm (the same in every experiment)."""
        rates = np.full(self.arms, float(self.base_rate))
        if self.effect != 0.0:
            rates[self.arms - self.effect_arms :] += float(self.effect)
        return rates

    def draw_truth(self, rng: np.random.Generator) -> NDArray[np.float64]:
        # The truth is fixed, so no random number is used: the experiments' streams stay those of earlier versions.
        return self.true_rates()

    def cell_trials(self) -> NDArray[np.int64]:
        return np.full(self.arms, int(self.trials), dtype=np.int64)

    def comparisons(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        i, j = np.triu_indices(self.arms, k=1)
        return i, j

    def simulate(self, rng: np.random.Generator, rates: NDArray[np.float64]) -> NDArray[np.int64]:
        return rng.binomial(self.cell_trials(), rates).astype(np.int64)

    def posterior_draws(
        self, successes: NDArray[np.int64], settings: RuleSettings, seed: int
    ) -> tuple[NDArray[np.float64], bool] | None:
        from abpool.api import fit_variants

        # Cells built directly: the counts are valid by construction, and going
        # through DuckDB would cost more than the fit itself.
        table = pd.DataFrame({"arm": self.names, "trials": self.cell_trials(), "successes": successes})
        cells = Cells(table, (), "arm", "cells", "simulation", self.arms)
        try:
            result = fit_variants(cells, prior=settings.prior, draws=settings.draws, seed=seed)
        except InvalidDataError:
            # e.g. every arm at 0% under the improper prior: the tool refuses, so the rule claims nothing.
            return None
        return result.draws, not result.diagnostics.converged

    def describe(self) -> dict[str, Any]:
        effect = float(self.effect)
        return {
            "model": self.kind,
            "arms": int(self.arms),
            "trials": int(self.trials),
            "base_rate": float(self.base_rate),
            "effect": effect if effect != 0.0 else None,
            "effect_arms": int(self.effect_arms) if effect != 0.0 else 0,
            "true_rates": self.true_rates().tolist(),
        }


@dataclass(frozen=True)
class SegmentsDesign:
    """A segmented experiment: ``segments`` segments × (control, treatment), ``trials`` users per cell.

    Each experiment draws its truth on the log-odds scale: control logits
    ``a_s ~ Normal(logit(base_rate), base_rate_spread)`` and treatment effects
    ``b_s ~ Normal(effect, effect_spread)``, independently per segment. With
    ``effect = effect_spread = 0`` (the default) every segment's treatment
    equals its control: an A/A study.

    Parameters
    ----------
    segments : int
        Segments per experiment (at least 2).
    trials : int
        Users per cell (segment × arm).
    base_rate : float
        Typical control rate.
    effect, effect_spread : float
        Mean and standard deviation of the segments' treatment effects, log-odds.
    base_rate_spread : float
        Standard deviation of the segments' control logits.
    parameterisation : {"conditioned", "centred", "non-centred"}, optional
        Form of every fit of the study (default: the model's, ``"conditioned"``).

    Examples
    --------
    >>> import numpy as np
    >>> design = SegmentsDesign(segments=3, trials=1000, base_rate=0.5)
    >>> design.labels()["segment"], design.labels()["arm"][:2]
    (['s1', 's1', 's2', 's2', 's3', 's3'], ['control', 'treatment'])
    >>> rates = design.draw_truth(np.random.default_rng(1))
    >>> bool(np.all(rates[0::2] == rates[1::2]))  # A/A: treatment equals control in every segment
    True
    >>> design.form
    'conditioned'
    >>> SegmentsDesign(segments=3, trials=100, base_rate=0.5, effect_spread=-1)
    Traceback (most recent call last):
    ...
    abpool.errors.InvalidArgumentError: effect spread must be zero or positive (an sd of log-odds), got -1
    """

    segments: int
    trials: int
    base_rate: float
    effect: float = 0.0
    effect_spread: float = 0.0
    base_rate_spread: float = BASE_RATE_SPREAD
    parameterisation: str | None = None
    kind: str = field(default="segments", init=False)
    size_key: str = field(default="segments", init=False)

    def __post_init__(self) -> None:
        _int_at_least(self.segments, 2, "segments", " (the model pools across segments)")
        _int_at_least(self.trials, 1, "trials", " (users per cell)")
        _probability(self.base_rate, "base rate", "0.5")
        _real(self.effect, "effect")
        for name in ("effect_spread", "base_rate_spread"):
            label = name.replace("_", " ")
            if _real(getattr(self, name), label) < 0:
                raise InvalidArgumentError(
                    f"{label} must be zero or positive (an sd of log-odds), got {getattr(self, name)!r}"
                )
        from abpool.models.segments import check_form

        check_form(self.parameterisation)

    @property
    def seed_key(self) -> tuple[int, ...]:
        # Two integers, so no segments study shares its stream with a variants study.
        return (int(self.segments), 2)

    @property
    def names(self) -> list[str]:
        """Segment labels s1, s2, … (zero-padded so they sort in order)."""
        width = len(str(self.segments))
        return [f"s{s + 1:0{width}d}" for s in range(self.segments)]

    def labels(self) -> dict[str, list[str]]:
        return {
            "segment": [name for name in self.names for _ in range(2)],
            "arm": ["control", "treatment"] * int(self.segments),
        }

    def cell_trials(self) -> NDArray[np.int64]:
        return np.full(2 * self.segments, int(self.trials), dtype=np.int64)

    def comparisons(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        # Cells alternate control, treatment: "treatment (odd cell) beats control (even cell)".
        control = np.arange(0, 2 * self.segments, 2, dtype=np.intp)
        return control + 1, control

    def _rates(self, a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
        from scipy.special import expit

        rates = np.empty(2 * self.segments)
        rates[0::2] = expit(a)
        rates[1::2] = expit(a + b)
        return rates

    def draw_truth(self, rng: np.random.Generator) -> NDArray[np.float64]:
        from scipy.special import logit

        # Both normals are always drawn, so a zero spread changes the truth but not the random stream.
        a = logit(self.base_rate) + self.base_rate_spread * rng.standard_normal(self.segments)
        b = self.effect + self.effect_spread * rng.standard_normal(self.segments)
        return self._rates(a, b)

    def simulate(self, rng: np.random.Generator, rates: NDArray[np.float64]) -> NDArray[np.int64]:
        return rng.binomial(self.cell_trials(), rates).astype(np.int64)

    @property
    def form(self) -> str:
        """The parameterisation every fit of the study uses."""
        from abpool.models.segments import check_form

        return check_form(self.parameterisation)

    def posterior_draws(
        self, successes: NDArray[np.int64], settings: RuleSettings, seed: int
    ) -> tuple[NDArray[np.float64], bool] | None:
        import warnings

        from abpool.api import analyze_segments
        from abpool.errors import ConvergenceWarning

        frame = pd.DataFrame({**self.labels(), "trials": self.cell_trials(), "successes": successes})
        per_chain = math.ceil(settings.draws / SEGMENTS_CHAINS)
        try:
            with warnings.catch_warnings():
                # Counted, not printed: the study reports how many fits did not converge.
                warnings.simplefilter("ignore", ConvergenceWarning)
                result = analyze_segments(
                    frame,
                    segment="segment",
                    arm="arm",
                    control="control",
                    prior=settings.prior,
                    parameterisation=self.form,
                    draws=per_chain,
                    tune=SEGMENTS_TUNE,
                    chains=SEGMENTS_CHAINS,
                    seed=seed,
                )
        except InvalidDataError:
            return None
        draws = np.empty((result.control_draws.shape[0], 2 * self.segments))
        draws[:, 0::2] = result.control_draws
        draws[:, 1::2] = result.treatment_draws[:, :, 0]
        return draws, not result.diagnostics.converged

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.kind,
            "segments": int(self.segments),
            "trials": int(self.trials),
            "base_rate": float(self.base_rate),
            "base_rate_spread": float(self.base_rate_spread),
            "effect": float(self.effect) if self.effect != 0.0 else None,
            "effect_spread": float(self.effect_spread),
            "effect_scale": "log-odds",
            "parameterisation": self.form,
        }


# ----------------------------------------------------------------------- rules
@dataclass(frozen=True)
class RuleSettings:
    """The decision rules of a study and how the Bayesian one is computed.

    ``model`` names the model the Bayesian rules fit (``"variants"`` or
    ``"segments"``, matching the design); ``prior`` and ``draws`` default to
    that model's: ``bda`` and 4,000 independent draws, or ``article`` and
    4 chains × 1,000 draws (after 500 tuning steps).

    Examples
    --------
    >>> RuleSettings(thresholds=(0.95, 0.99), loss_bound=0.01).rule_names
    ('bayes_p95', 'bayes_p95_loss0.01', 'bayes_p99', 'bayes_p99_loss0.01', 'bonferroni', 'holm', 'bh', 'uncorrected')
    >>> RuleSettings(model="segments").prior, RuleSettings(model="segments").draws
    ('article', 4000)
    """

    thresholds: tuple[float, ...] = (0.95,)
    loss_bound: float | None = None
    alpha: float = ALPHA
    prior: str | None = None
    draws: int | None = None
    model: str = "variants"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InvalidArgumentError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        segments = self.model == "segments"
        # Frozen: the defaults that depend on the model are filled in once, here.
        if self.prior is None:
            object.__setattr__(self, "prior", "article" if segments else "bda")
        if self.draws is None:
            object.__setattr__(self, "draws", SEGMENTS_DRAWS if segments else DEFAULT_DRAWS)
        if not self.thresholds:
            raise InvalidArgumentError("give at least one threshold for the Bayesian rule (e.g. 0.95)")
        for value in self.thresholds:
            value = _real(value, "threshold")
            if not 0.5 < value < 1.0:
                raise InvalidArgumentError(
                    f"threshold must be above 0.5 and below 1 (a posterior probability such as 0.95), got {value!r}"
                )
        if self.loss_bound is not None and not _real(self.loss_bound, "loss bound") > 0:
            raise InvalidArgumentError(
                f"loss bound must be a positive rate difference (e.g. 0.005), got {self.loss_bound!r}"
            )
        _probability(self.alpha, "alpha", "0.05")
        self._prior()
        _int_at_least(self.draws, 100, "draws", " (posterior draws per experiment)")

    def _prior(self) -> Any:
        if self.model == "segments":
            return get_segments_prior(self.prior)
        return get_variants_prior(self.prior)

    @property
    def rule_names(self) -> tuple[str, ...]:
        names = []
        for threshold in self.thresholds:
            names.append(f"bayes_p{100 * threshold:g}")
            if self.loss_bound is not None:
                names.append(f"bayes_p{100 * threshold:g}_loss{self.loss_bound:g}")
        return (*names, *CLASSICAL_RULES)

    def describe(self) -> dict[str, Any]:
        described = {
            "rules": list(self.rule_names),
            "thresholds": [float(t) for t in self.thresholds],
            "loss_bound": None if self.loss_bound is None else float(self.loss_bound),
            "alpha": float(self.alpha),
            "prior": str(self._prior()),
            "engine": "mcmc (nutpie NUTS)" if self.model == "segments" else "exact",
            "draws": int(self.draws),
        }
        if self.model == "segments":
            described["chains"] = SEGMENTS_CHAINS
            described["tune"] = SEGMENTS_TUNE
        return described


def bayes_claims(
    draws: NDArray[np.float64], i: NDArray[np.intp], j: NDArray[np.intp], threshold: float, loss_bound: float | None
) -> NDArray[np.int8]:
    """Claims of the Bayesian rule: +1 "i beats j", -1 "j beats i", 0 none.

    Examples
    --------
    >>> import numpy as np
    >>> draws = np.array([[0.6, 0.5], [0.7, 0.5], [0.4, 0.5], [0.8, 0.5]])
    >>> bayes_claims(draws, np.array([0]), np.array([1]), 0.7, None).tolist()
    [1]
    >>> bayes_claims(draws, np.array([0]), np.array([1]), 0.7, 0.01).tolist()
    [0]
    """
    diff = draws[:, i] - draws[:, j]
    up = (diff > 0).mean(axis=0) >= threshold
    down = (diff < 0).mean(axis=0) >= threshold
    if loss_bound is not None:
        up &= np.maximum(-diff, 0.0).mean(axis=0) < loss_bound
        down &= np.maximum(diff, 0.0).mean(axis=0) < loss_bound
    return up.astype(np.int8) - down.astype(np.int8)


def classical_claims(
    successes: NDArray[np.int64], trials: NDArray[np.int64], i: NDArray[np.intp], j: NDArray[np.intp], alpha: float
) -> dict[str, NDArray[np.int8]]:
    """Claims of each classical rule: the observed sign where the (adjusted) p-value is below ``alpha``.

    Examples
    --------
    >>> import numpy as np
    >>> claims = classical_claims(np.array([30, 50, 52]), np.array([100] * 3), *np.triu_indices(3, 1), 0.05)
    >>> {rule: values.tolist() for rule, values in claims.items()}
    {'bonferroni': [-1, -1, 0], 'holm': [-1, -1, 0], 'bh': [-1, -1, 0], 'uncorrected': [-1, -1, 0]}
    """
    p_raw = np.array(
        [
            pair_test(int(successes[a]), int(trials[a]), int(successes[b]), int(trials[b]))[2]
            for a, b in zip(i, j, strict=True)
        ]
    )
    sign = np.sign(successes[i] / trials[i] - successes[j] / trials[j]).astype(np.int8)
    adjusted = {**adjust_p_values(p_raw), "uncorrected": p_raw}
    return {rule: (sign * (adjusted[rule] < alpha)).astype(np.int8) for rule in CLASSICAL_RULES}


def score_claims(claims: NDArray[np.int8], truth: NDArray[np.int8]) -> NDArray[np.int64]:
    """Count ``SCORES`` for each rule's claims (rows) against the true signs.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([0, 1, -1])
    >>> score_claims(np.array([[1, 1, 1], [0, 1, 0]]), truth).tolist()
    [[3, 2, 1, 1, 2], [1, 0, 0, 1, 2]]
    """
    claimed = claims != 0
    correct = claimed & (claims == truth)
    wrong_sign = claimed & (truth != 0) & (claims == -truth)
    # The truth can differ between experiments (segments designs draw it), so it is counted per experiment.
    differences = np.broadcast_to(np.count_nonzero(truth, axis=-1), claimed.shape[:-1])
    return np.stack(
        [
            claimed.sum(axis=-1),
            (claimed & ~correct).sum(axis=-1),
            wrong_sign.sum(axis=-1),
            correct.sum(axis=-1),
            differences,
        ],
        axis=-1,
    ).astype(np.int64)


# ----------------------------------------------------------------- experiments
def experiment_seeds(design: Design, experiments: int, seed: int) -> list[np.random.SeedSequence]:
    """One independent seed sequence per experiment (see "Seeds" in the module notes)."""
    experiments = _int_at_least(experiments, 1, "experiments", "")
    seed = _int_at_least(seed, 0, "seed", "")
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
    fit = design.posterior_draws(successes, settings, fit_seed)
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
def wilson_interval(mean: float, n: int, level: float = MC_LEVEL) -> list[float]:
    """Wilson score interval for a proportion (or a mean of values in [0, 1]) over ``n`` trials.

    Examples
    --------
    >>> [round(x, 4) for x in wilson_interval(0.0, 1000)]
    [0.0, 0.0038]
    """
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(mean * n, n, alpha=1.0 - level, method="wilson")
    # Guard against rounding at 0 and 1 so the interval always holds the estimate.
    return [max(0.0, min(float(low), mean)), min(1.0, max(float(high), mean))]


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
    workers = _int_at_least(workers, 1, "workers", "")
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
