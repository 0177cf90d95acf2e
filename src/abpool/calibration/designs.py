"""The truths a calibration study simulates: A/B/n tests and segmented experiments.

See :mod:`abpool.calibration` for the definitions of the truths, rules and scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool._validation import check_int, check_probability, check_real
from abpool.data import Cells, _default_name
from abpool.errors import InvalidArgumentError, InvalidDataError

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
        self, successes: NDArray[np.int64], *, prior: str, draws: int, seed: int
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
        check_int(self.arms, "arms", minimum=2, hint=" (an experiment compares arms)")
        check_int(self.trials, "trials", minimum=1, hint=" (users per arm)")
        base = check_probability(self.base_rate, "base rate", "0.5")
        effect = check_real(self.effect, "effect")
        if effect != 0.0 and not 0.0 < base + effect < 1.0:
            raise InvalidArgumentError(
                f"base rate + effect must be strictly between 0 and 1, got {base:g} + {effect:g} = {base + effect:g}"
            )
        if effect != 0.0 and not 1 <= check_int(self.effect_arms, "effect arms", minimum=1) < self.arms:
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
        self, successes: NDArray[np.int64], *, prior: str, draws: int, seed: int
    ) -> tuple[NDArray[np.float64], bool] | None:
        from abpool.variants.fit import fit_variants

        # Cells built directly: the counts are valid by construction, and going
        # through DuckDB would cost more than the fit itself.
        table = pd.DataFrame({"arm": self.names, "trials": self.cell_trials(), "successes": successes})
        cells = Cells(table, (), "arm", "cells", "simulation", self.arms)
        try:
            # Counted, not warned: the study reports how many fits did not converge.
            result = fit_variants(cells, prior=prior, draws=draws, seed=seed, on_unconverged="ignore")
        except InvalidDataError:
            # e.g. every arm at 0% under the improper prior: the tool refuses, so the rule claims nothing.
            return None
        return result.rate_draws(), not result.diagnostics.converged

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
        check_int(self.segments, "segments", minimum=2, hint=" (the model pools across segments)")
        check_int(self.trials, "trials", minimum=1, hint=" (users per cell)")
        check_probability(self.base_rate, "base rate", "0.5")
        check_real(self.effect, "effect")
        for name in ("effect_spread", "base_rate_spread"):
            label = name.replace("_", " ")
            if check_real(getattr(self, name), label) < 0:
                raise InvalidArgumentError(
                    f"{label} must be zero or positive (an sd of log-odds), got {getattr(self, name)!r}"
                )
        from abpool.segments.model import check_form

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
        from abpool.segments.model import check_form

        return check_form(self.parameterisation)

    def posterior_draws(
        self, successes: NDArray[np.int64], *, prior: str, draws: int, seed: int
    ) -> tuple[NDArray[np.float64], bool] | None:
        from abpool.segments.fit import analyze_segments

        frame = pd.DataFrame({**self.labels(), "trials": self.cell_trials(), "successes": successes})
        per_chain = math.ceil(draws / SEGMENTS_CHAINS)
        try:
            result = analyze_segments(
                frame,
                segment="segment",
                arm="arm",
                control="control",
                prior=prior,
                parameterisation=self.form,
                draws=per_chain,
                tune=SEGMENTS_TUNE,
                chains=SEGMENTS_CHAINS,
                seed=seed,
                # Counted, not warned: the study reports how many fits did not converge.
                on_unconverged="ignore",
            )
        except InvalidDataError:
            return None
        # Segment by segment, control then treatment: the design's cell order.
        rates = np.stack([result.rate_draws(s) for s in range(self.segments)], axis=1)
        return rates.reshape(rates.shape[0], -1), not result.diagnostics.converged

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
