"""The decision rules a calibration study applies, and how their claims are scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from abpool._validation import check_int, check_probability, check_real
from abpool.calibration.designs import DEFAULT_DRAWS, SEGMENTS_CHAINS, SEGMENTS_DRAWS, SEGMENTS_TUNE
from abpool.classical import adjust_p_values, pair_test
from abpool.errors import InvalidArgumentError
from abpool.segments.priors import get_segments_prior
from abpool.variants.priors import get_variants_prior

ALPHA = 0.05
CLASSICAL_RULES = ("bonferroni", "holm", "bh", "uncorrected")
MODELS = ("variants", "segments")
# Per-experiment score columns, in the order of StudyResult.scores' last axis.
SCORES = ("claims", "false_claims", "wrong_sign_claims", "correct_claims", "true_differences")


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
            value = check_real(value, "threshold")
            if not 0.5 < value < 1.0:
                raise InvalidArgumentError(
                    f"threshold must be above 0.5 and below 1 (a posterior probability such as 0.95), got {value!r}"
                )
        if self.loss_bound is not None and not check_real(self.loss_bound, "loss bound") > 0:
            raise InvalidArgumentError(
                f"loss bound must be a positive rate difference (e.g. 0.005), got {self.loss_bound!r}"
            )
        check_probability(self.alpha, "alpha", "0.05")
        self._prior()
        check_int(self.draws, "draws", minimum=1_000, hint=" (posterior draws per experiment)")

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
