"""Decision quantities computed from posterior draws (plain numpy, no models).

Every function takes a draws matrix of shape ``(draws, arms)`` — one column per
variant or segment arm — and returns arrays indexed like the columns.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> draws = np.column_stack([rng.beta(30, 70, 4000), rng.beta(60, 40, 4000)])
>>> prob_greater_matrix(draws)[1, 0] > 0.99
np.True_
>>> prob_best(draws).round(2).tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from abpool._special import chi2_survival
from abpool._validation import check_level, check_positive

# Bound on draws × pairs held in memory at once when filling the P(i > j) matrix.
_PAIR_CHUNK = 20_000_000
# Up to this many arms, a maximum over the arms is taken one arm at a time: NumPy's own reduction
# over a short last axis pays a loop per draw, 20× the cost for four arms; beyond it NumPy's is faster.
_FOLD_ARMS = 32


def share(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The share of true draws of each column: ``mask.mean(axis=0)``, the same numbers, several times faster.

    A sum of zeros and ones is exact in any order, so it is taken as one
    matrix-vector product instead of NumPy's loop over the draws.

    Examples
    --------
    >>> import numpy as np
    >>> share(np.array([[True, False], [True, True], [False, False], [True, False]])).tolist()
    [0.75, 0.25]
    """
    n = mask.shape[0]
    if n == 0:
        return mask.mean(axis=0)
    counts = np.ones(n) @ mask.reshape(n, -1).astype(np.float64)
    return (counts / n).reshape(mask.shape[1:])[()]


def arm_max(draws: NDArray) -> NDArray:
    """The largest value over the last axis (the arms), kept as an axis: ``draws.max(axis=-1, keepdims=True)``.

    Examples
    --------
    >>> import numpy as np
    >>> arm_max(np.array([[0.1, 0.3, 0.2], [0.5, np.nan, 0.1]])).tolist()
    [[0.3], [nan]]
    """
    if draws.shape[-1] > _FOLD_ARMS or draws.shape[-1] == 0:
        return draws.max(axis=-1, keepdims=True)
    best = draws[..., 0]
    for k in range(1, draws.shape[-1]):
        # np.maximum propagates NaN as the reduction does; a maximum is exact in any order.
        best = np.maximum(best, draws[..., k])
    return best[..., None]


def arm_argmax(draws: NDArray, best: NDArray | None = None) -> NDArray[np.intp]:
    """Position of the largest value over the last axis: ``draws.argmax(axis=-1)``, ties and NaN alike.

    ``best`` may pass :func:`arm_max` of ``draws`` when the caller already has it.

    Examples
    --------
    >>> import numpy as np
    >>> arm_argmax(np.array([[0.1, 0.3, 0.3], [0.5, np.nan, np.nan]])).tolist()
    [1, 1]
    """
    best = arm_max(draws) if best is None else best
    if draws.shape[-1] > _FOLD_ARMS or draws.shape[-1] == 0 or np.isnan(best).any():
        # Many arms, or a NaN (argmax names the first NaN): NumPy's own rule.
        return draws.argmax(axis=-1)
    best = best[..., 0]
    # The maximum is one of the draws: the last arm unless an earlier one holds it, and from the last arm
    # back, so the first arm holding it wins, as in argmax.
    index = np.full(best.shape, draws.shape[-1] - 1, dtype=np.intp)
    for k in range(draws.shape[-1] - 2, -1, -1):
        index = np.where(draws[..., k] == best, k, index)
    return index[()]


def equal_tailed_interval(draws: NDArray, level: float) -> tuple[NDArray, NDArray]:
    """Equal-tailed credible interval of each column.

    Examples
    --------
    >>> import numpy as np
    >>> low, high = equal_tailed_interval(np.arange(1001.0)[:, None], 0.9)
    >>> round(float(low[0]), 6), round(float(high[0]), 6)
    (50.0, 950.0)
    """
    level = check_level(level, "level")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail], axis=0)
    return low, high


def sorted_columns(draws: NDArray) -> NDArray[np.float64]:
    """Each column of ``draws`` (draws × quantities) sorted, as rows: (quantities, draws), NaN last."""
    values = np.asarray(draws, dtype=float)
    rows = np.array(values.reshape(values.shape[0], -1).T, order="C")
    rows.sort(axis=1)
    return rows


def column_quantiles(draws: NDArray, probs: Sequence[float], *, ordered: NDArray | None = None) -> NDArray:
    """Quantiles of each column, NaN draws ignored: ``np.nanquantile(draws, probs, axis=0)``, from one sort.

    Linear interpolation between order statistics, in the same arithmetic as
    NumPy's default method. ``ordered`` may pass :func:`sorted_columns` of
    ``draws`` when the caller already has it.

    Examples
    --------
    >>> import numpy as np
    >>> column_quantiles(np.array([[1.0, 4.0], [2.0, np.nan], [3.0, 6.0]]), [0.25, 0.5]).tolist()
    [[1.5, 4.5], [2.0, 5.0]]
    """
    values = np.asarray(draws, dtype=float)
    rows = sorted_columns(values) if ordered is None else ordered
    counts = np.count_nonzero(~np.isnan(rows), axis=1)
    index = np.arange(rows.shape[0])
    out = np.full((len(probs), rows.shape[0]), np.nan)
    for i, q in enumerate(probs):
        position = q * (counts - 1)
        low = np.clip(np.floor(position).astype(np.int64), 0, None)
        high = np.minimum(low + 1, np.maximum(counts - 1, 0))
        fraction = position - low
        a, b = rows[index, low], rows[index, high]
        with np.errstate(invalid="ignore"):
            # NumPy's lerp: from the nearer end, so the result is exact at whole positions.
            value = np.where(fraction >= 0.5, b - (b - a) * (1.0 - fraction), a + (b - a) * fraction)
        out[i] = np.where(counts > 0, value, np.nan)
    return out.reshape(len(probs), *values.shape[1:])


def highest_density_interval(
    draws: NDArray, level: float, *, ordered: NDArray | None = None
) -> tuple[NDArray, NDArray]:
    """Narrowest interval holding ``level`` of each column's draws (unimodal posteriors).

    ``ordered`` may pass :func:`sorted_columns` of ``draws`` when the caller already has it.

    Examples
    --------
    >>> import numpy as np
    >>> low, high = highest_density_interval(np.arange(101.0)[:, None], 0.5)
    >>> float(high[0] - low[0])
    50.0
    """
    level = check_level(level, "level")
    rows = sorted_columns(draws) if ordered is None else ordered
    n = rows.shape[1]
    keep = int(np.ceil(level * n))
    keep = min(max(keep, 1), n)
    widths = rows[:, keep - 1 :] - rows[:, : n - keep + 1]
    start = np.argmin(widths, axis=1)
    index = np.arange(rows.shape[0])
    return rows[index, start], rows[index, start + keep - 1]


def prob_greater_matrix(draws: NDArray) -> NDArray:
    """Matrix ``P[i, j] = P(column i > column j)``; the diagonal is 0.

    Computed in blocks so memory stays bounded for thousands of arms.

    Examples
    --------
    >>> import numpy as np
    >>> draws = np.array([[0.1, 0.2], [0.3, 0.2], [0.5, 0.9], [0.6, 0.1]])
    >>> prob_greater_matrix(draws).tolist()
    [[0.0, 0.5], [0.5, 0.0]]
    """
    draws = np.asarray(draws)
    n_draws, n_arms = draws.shape
    out = np.zeros((n_arms, n_arms))
    if n_draws and n_arms <= _FOLD_ARMS:
        # Pair by pair over contiguous columns: the (draws, arms, arms) comparison costs ten times more for a few arms.
        columns = np.ascontiguousarray(draws.T)
        for i in range(n_arms):
            for j in range(n_arms):
                if i != j:
                    out[i, j] = np.count_nonzero(columns[i] > columns[j]) / n_draws
        return out
    block = max(1, _PAIR_CHUNK // max(1, n_draws * n_arms))
    for start in range(0, n_arms, block):
        stop = min(start + block, n_arms)
        out[start:stop] = share(draws[:, start:stop, None] > draws[:, None, :])
    np.fill_diagonal(out, 0.0)
    return out


def prob_greater(draws: NDArray, i: int, j: int) -> float:
    """``P(column i > column j)``.

    Examples
    --------
    >>> import numpy as np
    >>> prob_greater(np.array([[1.0, 0.0], [0.0, 1.0]]), 0, 1)
    0.5
    """
    return float(np.mean(draws[:, i] > draws[:, j]))


def prob_best(draws: NDArray) -> NDArray:
    """Probability that each column is the largest.

    Examples
    --------
    >>> import numpy as np
    >>> prob_best(np.array([[0.1, 0.2], [0.3, 0.2]])).tolist()
    [0.5, 0.5]
    """
    winners = arm_argmax(draws)
    return np.bincount(winners, minlength=draws.shape[1]) / draws.shape[0]


def expected_loss(draws: NDArray) -> NDArray:
    """Expected loss of choosing each column: ``E[max_k theta_k - theta_j]``.

    The rate given up, on average, by shipping that arm when another is better.

    Examples
    --------
    >>> import numpy as np
    >>> expected_loss(np.array([[0.1, 0.2], [0.3, 0.2]])).round(6).tolist()
    [0.05, 0.05]
    """
    return (arm_max(draws) - draws).mean(axis=0)


def absolute_lift(draws: NDArray, control: int) -> NDArray:
    """Absolute lift draws ``theta_j - theta_c``: the first half of :func:`lift_draws`, for callers needing no more.

    Examples
    --------
    >>> import numpy as np
    >>> absolute_lift(np.array([[0.2, 0.3]]), control=0).round(3).tolist()
    [[0.0, 0.1]]
    """
    return draws - draws[..., [control]]


def lift_draws(draws: NDArray, control: int) -> tuple[NDArray, NDArray]:
    """Absolute (``theta_j - theta_c``) and relative (``theta_j / theta_c - 1``) lift draws.

    Examples
    --------
    >>> import numpy as np
    >>> absolute, relative = lift_draws(np.array([[0.2, 0.3]]), control=0)
    >>> absolute.round(3).tolist(), relative.round(3).tolist()
    ([[0.0, 0.1]], [[0.0, 0.5]])
    """
    base = draws[..., [control]]
    absolute = absolute_lift(draws, control)
    # A control rate of (numerically) zero makes the relative lift infinite, which is its honest value.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        relative = draws / base - 1.0
    return absolute, relative


def cell_answers(
    draws: NDArray,
    control: int,
    probs: Sequence[float],
    *,
    ordered: NDArray | None = None,
    rope: float | None = None,
) -> dict[str, NDArray]:
    """Every per-cell answer of rate draws ``(draws, segments, arms)``, each arm against its segment's control.

    Returns ``rate``, ``lift`` and ``relative_lift`` (quantiles at ``probs``,
    shape ``(len(probs), segments, arms)``), ``prob_beats_control``,
    ``prob_best`` and ``expected_loss`` (``(segments, arms)``), and with a
    ``rope`` also ``prob_in_rope`` (:func:`prob_in_rope` of the absolute lift).
    ``ordered`` may pass :func:`sorted_columns` of ``draws``.

    Examples
    --------
    >>> import numpy as np
    >>> found = cell_answers(np.array([[[0.1, 0.2]], [[0.3, 0.2]]]), 0, [0.5])
    >>> found["prob_beats_control"].tolist(), found["prob_best"].tolist()
    ([[0.0, 0.5]], [[0.5, 0.5]])
    """
    segments = draws.shape[1]
    if segments > _SEGMENT_BLOCK:
        return _cell_answers_by_block(draws, control, probs, ordered, rope)
    absolute, relative = lift_draws(draws, control)
    best = arm_max(draws)
    winners = arm_argmax(draws, best)
    found = {
        "rate": column_quantiles(draws, probs, ordered=ordered),
        "lift": column_quantiles(absolute, probs),
        "relative_lift": column_quantiles(relative, probs),
        "prob_beats_control": share(absolute > 0),
        "prob_best": np.stack([(winners == k).mean(axis=0) for k in range(draws.shape[2])], axis=-1),
        "expected_loss": (best - draws).mean(axis=0),
    }
    if rope is not None:
        found["prob_in_rope"] = prob_in_rope(absolute, rope)
    return found


# Segments answered at a time by cell_answers: blocks whose draws and temporaries stay in the cache,
# answered on every core (NumPy's sorts and arithmetic release the GIL). A fit with a thousand segments
# would otherwise spend more time answering than its chains spent sampling.
_SEGMENT_BLOCK = 64
# Which axis of each answer runs over segments.
_SEGMENT_AXIS = {"rate": 1, "lift": 1, "relative_lift": 1}


def _cell_answers_by_block(
    draws: NDArray, control: int, probs: Sequence[float], ordered: NDArray | None, rope: float | None
) -> dict[str, NDArray]:
    """:func:`cell_answers` of blocks of segments, joined: the same numbers for each cell."""
    arms = draws.shape[2]

    def answer(start: int, block: NDArray) -> dict[str, NDArray]:
        rows = None if ordered is None else ordered[start * arms : (start + block.shape[1]) * arms]
        return cell_answers(block, control, probs, ordered=rows, rope=rope)

    return _by_segment_block(answer, draws)


def _by_segment_block(answer: Callable[[int, NDArray], dict[str, NDArray]], draws: NDArray) -> dict[str, NDArray]:
    """``answer(first segment, draws of a block of segments)`` on every block, on every core; the blocks joined."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    segments = draws.shape[1]
    starts = range(0, segments, _SEGMENT_BLOCK)
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        parts = list(pool.map(lambda start: answer(start, draws[:, start : start + _SEGMENT_BLOCK]), starts))
    return {key: np.concatenate([part[key] for part in parts], axis=_SEGMENT_AXIS.get(key, 0)) for key in parts[0]}


def rate_answers(
    draws: NDArray, control: int, probs: Sequence[float], level: float, *, rope: float | None = None
) -> dict[str, NDArray]:
    """Everything a summary reports of rate draws ``(draws, segments, arms)``, by blocks of segments on every core.

    :func:`cell_answers`, and each cell's ``mean``, ``sd`` (``ddof=1``) and
    highest density interval at ``level`` (``hdi_low``, ``hdi_high``), each
    ``(segments, arms)``. The same numbers as computing each over the whole
    array: a block's sort, mean and spread are those of its own columns.

    Examples
    --------
    >>> import numpy as np
    >>> found = rate_answers(np.array([[[0.1, 0.2]], [[0.3, 0.2]], [[0.2, 0.4]]]), 0, [0.5], 0.5)
    >>> found["mean"].round(3).tolist(), found["hdi_low"].tolist(), found["rate"].tolist()
    ([[0.2, 0.267]], [[0.2, 0.2]], [[[0.2, 0.2]]])
    """
    segments, arms = draws.shape[1], draws.shape[2]
    if segments > _SEGMENT_BLOCK:
        return _by_segment_block(lambda _, block: rate_answers(block, control, probs, level, rope=rope), draws)
    ordered = sorted_columns(draws)
    low, high = highest_density_interval(draws, level, ordered=ordered)
    found = cell_answers(draws, control, probs, ordered=ordered, rope=rope)
    return found | {
        "mean": draws.mean(axis=0),
        "sd": draws.std(axis=0, ddof=1),
        "hdi_low": low.reshape(segments, arms),
        "hdi_high": high.reshape(segments, arms),
    }


def prob_in_rope(difference: NDArray, rope: float) -> NDArray:
    """``P(|difference| < rope)`` per column: the chance the effect is practically nil.

    Examples
    --------
    >>> import numpy as np
    >>> prob_in_rope(np.array([[0.001], [0.05]]), 0.01).tolist()
    [0.5]
    """
    rope = check_positive(rope, "rope")
    return share(np.abs(difference) < rope)


# --------------------------------------------------------------------------- sample ratio mismatch
# p below this flags a sample ratio mismatch. 0.001 is the common industry threshold (GrowthBook
# and Optimizely flag at it; Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online Controlled
# Experiments", KDD 2019): checked on every analysis, a lower level keeps false alarms rare, and a
# real assignment bug in a large experiment gives p-values far below it.
SRM_ALPHA = 0.001


def srm_test(counts: NDArray, split: NDArray) -> tuple[float, float]:
    """Chi-square goodness-of-fit test of assignment counts against the intended split.

    Parameters
    ----------
    counts : array of int
        Users assigned to each arm.
    split : array of float
        Intended shares (any positive weights; they are normalised).

    Returns
    -------
    statistic, p_value : float

    Examples
    --------
    >>> import numpy as np
    >>> statistic, p = srm_test(np.array([50_000, 45_000]), np.array([1.0, 1.0]))
    >>> round(statistic, 1), p < 1e-50
    (263.2, True)
    """
    counts = np.asarray(counts, dtype=float)
    expected = counts.sum() * np.asarray(split, dtype=float) / np.sum(split)
    # Pearson's statistic and its chi-square survival function (scipy.stats.chisquare's, without
    # importing scipy.stats, which costs a fit more than the test).
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    return statistic, chi2_survival(statistic, counts.size - 1)


# --------------------------------------------------------------------------- the recommendation
# The expected-loss rule of Stucchio's Bayesian A/B testing (VWO SmartStats): ship an arm once the
# rate given up by choosing it, in expectation, is below the "threshold of caring". 0.1 percentage
# points by default: differences smaller than that are rarely worth a product change; set it to
# what a difference is worth to you.
DEFAULT_THRESHOLD = 0.001
# "No meaningful difference": every arm within the ROPE of the control with at least this probability.
ROPE_PROBABILITY = 0.95
# Arms with fewer users than this rest mostly on the prior; the recommendation says so.
SMALL_SAMPLE = 30
SHIP, KEEP_RUNNING, NO_DIFFERENCE = "ship", "keep running", "no meaningful difference"
# A scorecard's decision when the primary metric would ship an arm that a flagged guardrail may hurt.
HOLD = "hold"


def decision_text(decision: str, arm: str | None, control: str) -> str:
    """A decision in a few words: ``ship B``, ``keep A``, ``hold B``, ``keep running``, ``no meaningful difference``.

    Examples
    --------
    >>> decision_text("ship", "B", "A"), decision_text("ship", "A", "A"), decision_text("hold", "B", "A")
    ('ship B', 'keep A', 'hold B')
    """
    if decision == SHIP:
        return f"keep {arm}" if arm == control else f"ship {arm}"
    if decision == HOLD:
        return f"{HOLD} {arm}"
    return decision


def recommend(
    draws: NDArray,
    control: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    rope: float | None = None,
    losses: NDArray | None = None,
) -> tuple[str, int | None]:
    """The decision the expected-loss rule makes for one experiment (or one segment).

    1. **no meaningful difference** when every arm's absolute lift over the
       control is within ``rope`` (default: ``threshold``) with probability at
       least 95%;
    2. else **ship** the arm with the smallest expected loss, when that loss is
       below ``threshold`` (the control itself when it is the one: keep it);
    3. else **keep running**.

    Returns the decision and the arm it names (None for "keep running").
    ``losses`` may pass :func:`expected_loss` of ``draws`` when the caller already has it.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clear = np.column_stack([rng.beta(300, 700, 4000), rng.beta(600, 400, 4000)])
    >>> recommend(clear, 0, threshold=0.001)
    ('ship', 1)
    >>> vague = np.column_stack([rng.beta(3, 7, 4000), rng.beta(4, 6, 4000)])
    >>> recommend(vague, 0, threshold=0.001)
    ('keep running', None)
    >>> same = np.column_stack([rng.beta(50_000, 50_000, 4000), rng.beta(50_000, 50_000, 4000)])
    >>> recommend(same, 0, threshold=0.001, rope=0.01)
    ('no meaningful difference', 0)
    """
    threshold = check_positive(threshold, "threshold")
    rope = threshold if rope is None else check_positive(rope, "rope")
    inside = prob_in_rope(absolute_lift(draws, control), rope)
    others = [k for k in range(draws.shape[1]) if k != control]
    if all(inside[k] >= ROPE_PROBABILITY for k in others):
        return NO_DIFFERENCE, control
    losses = expected_loss(draws) if losses is None else losses
    best = int(np.argmin(losses))
    if losses[best] < threshold:
        return SHIP, best
    return KEEP_RUNNING, None


# --------------------------------------------------------------------------- the control
# Labels that name the control when none is given, in order of precedence (compared ignoring case).
CONTROL_NAMES = ("control", "ctrl", "baseline", "a", "0", "false")


def choose_control(arms: list[str] | tuple[str, ...], given: str | None = None) -> tuple[str, str]:
    """The control arm and why it is the control: never an accident of row order.

    An explicit ``given`` wins; else the first of :data:`CONTROL_NAMES`
    present (ignoring case); else the first label in sorted order, which a
    shuffled file does not change.

    Examples
    --------
    >>> choose_control(["B", "control", "C"])
    ('control', "named 'control', the conventional name of a control")
    >>> choose_control(["treated", "holdout"])
    ('holdout', 'the first arm in sorted order; name the control with --control')
    >>> choose_control(["B", "A"], "B")
    ('B', 'chosen with --control')
    """
    if given is not None:
        # The same words as abpool.result.CHOSEN, which recognises an explicit choice by them.
        return str(given), "chosen with --control"
    folded = {arm.casefold(): arm for arm in reversed(arms)}
    for name in CONTROL_NAMES:
        if name in folded:
            return folded[name], f"named {folded[name]!r}, the conventional name of a control"
    return sorted(arms)[0], "the first arm in sorted order; name the control with --control"
