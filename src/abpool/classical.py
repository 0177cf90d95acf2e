"""The classical view: two-proportion tests with multiplicity corrections.

This is what the hierarchical model is meant to replace, computed so that a
reader can see both answers side by side:

* without segments, every pair of arms ``(i, j)`` (``i`` before ``j`` in data
  order) is tested;
* with segments, every treatment arm is tested against the control within each
  segment.

Each comparison uses the pooled two-proportion z-test (as statsmodels'
``proportions_ztest``) unless an expected count of the 2 × 2 table under the
null hypothesis is below 5, where the normal approximation is poor; then
Fisher's exact test gives the p-value (:func:`fisher_two_sided`: scipy's
``fisher_exact`` p-value, computed so that it stays fast for any counts). All tests are
two-sided. The raw p-values are adjusted across the whole family of
comparisons with Bonferroni, Holm and Benjamini-Hochberg (as statsmodels'
``multipletests``; the tests compare both with statsmodels).

Examples
--------
>>> from abpool.data import cells_from_counts
>>> table = classical_comparisons(cells_from_counts([30, 50, 55, 60], [100] * 4))
>>> table[["arm_i", "arm_j", "test"]].head(2).values.tolist()
[['A', 'B', 'z'], ['A', 'C', 'z']]
>>> table["p_bonferroni"].round(4).tolist()
[0.0234, 0.0021, 0.0001, 1.0, 0.9313, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool._special import logsumexp
from abpool.data import Cells
from abpool.data.moments import ArmMoments
from abpool.errors import InvalidArgumentError

# Below this expected count in any cell of the 2 × 2 table the z-test's normal
# approximation is unreliable (the usual rule of thumb), so Fisher's test is used.
MIN_EXPECTED_COUNT = 5.0
# Fisher's test sums over every table with the observed margins; beyond this many (tens of millions of
# users in the smaller arm) the memory it needs is not worth it, and the z-test is used instead.
MAX_FISHER_SUPPORT = 10**7

# Our names for the corrections -> statsmodels' method names (the tests check our arithmetic against it).
ADJUSTMENTS = {"bonferroni": "bonferroni", "holm": "holm", "bh": "fdr_bh"}


CLASSICAL_COLUMNS = {
    "segment": "segment label (values of the segment columns joined by ' / '); None without segments",
    "arm_i": "first arm of the comparison (a treatment arm when comparing with the control)",
    "arm_j": "second arm of the comparison (the control when comparing with the control)",
    "trials_i": "trials of arm_i",
    "successes_i": "successes of arm_i",
    "trials_j": "trials of arm_j",
    "successes_j": "successes of arm_j",
    "rate_i": "observed rate of arm_i",
    "rate_j": "observed rate of arm_j",
    "difference": "rate_i - rate_j",
    "test": "'z' (pooled two-proportion z-test) or 'fisher' (Fisher's exact test, small expected counts)",
    "statistic": "z statistic (NaN for Fisher's test)",
    "p_value": "two-sided p-value, not adjusted",
    "p_bonferroni": "Bonferroni-adjusted p-value (family: every row of the table)",
    "p_holm": "Holm-adjusted p-value",
    "p_bh": "Benjamini-Hochberg-adjusted p-value (false discovery rate)",
}


def pair_test(successes_i: int, trials_i: int, successes_j: int, trials_j: int) -> tuple[str, float, float]:
    """Two-sided test of equal rates for two arms.

    Parameters
    ----------
    successes_i, trials_i, successes_j, trials_j : int
        Counts of the two arms.

    Returns
    -------
    test : {"z", "fisher"}
        The test that produced the p-value.
    statistic : float
        The z statistic, NaN for Fisher's test.
    p_value : float

    Examples
    --------
    >>> test, z, p = pair_test(30, 100, 50, 100)
    >>> test, round(z, 3), round(p, 5)
    ('z', -2.887, 0.00389)
    >>> test, _, p = pair_test(1, 10, 6, 10)
    >>> test, round(p, 4)
    ('fisher', 0.0573)
    """
    pooled = (successes_i + successes_j) / (trials_i + trials_j)
    expected = np.array([trials_i, trials_j]) * np.array([[pooled], [1.0 - pooled]])
    total = successes_i + successes_j
    support = min(total, trials_i, trials_j, trials_i + trials_j - total) + 1
    if expected.min() < MIN_EXPECTED_COUNT and support <= MAX_FISHER_SUPPORT:
        return "fisher", float("nan"), fisher_two_sided(successes_i, trials_i, successes_j, trials_j)
    # statsmodels' proportions_ztest (pooled variance, two-sided), in a few lines instead of its import.
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / trials_i + 1.0 / trials_j))
    difference = successes_i / trials_i - successes_j / trials_j
    z = difference / spread if spread > 0 else math.copysign(math.inf, difference) if difference else math.nan
    return "z", z, math.erfc(abs(z) / math.sqrt(2.0)) if not math.isnan(z) else math.nan


def fisher_two_sided(successes_i: int, trials_i: int, successes_j: int, trials_j: int) -> float:
    """Two-sided p-value of Fisher's exact test of a 2 × 2 table, for counts of any size.

    The same p-value as :func:`scipy.stats.fisher_exact` (tables whose
    probability is at most the observed one's, up to a relative 1e-7), computed
    from the hypergeometric ratio ``P(x + 1) / P(x)`` over the table's support,
    whose length is at most ``min(trials, successes, failures) + 1``: scipy's
    function takes minutes once the arms hold billions of users, where this
    takes milliseconds.

    Examples
    --------
    >>> round(fisher_two_sided(1, 10, 6, 10), 4)
    0.0573
    >>> fisher_two_sided(1, 10**13, 2, 10**13)
    1.0
    """
    total = successes_i + successes_j
    low, high = max(0, total - trials_j), min(total, trials_i)
    x = np.arange(low, high, dtype=float)
    steps = np.log(trials_i - x) + np.log(total - x) - np.log(x + 1.0) - np.log(trials_j - total + x + 1.0)
    log_p = np.concatenate([[0.0], np.cumsum(steps)])
    log_p -= log_p[successes_i - low]
    return float(min(1.0, np.exp(logsumexp(log_p[log_p <= 1e-7]) - logsumexp(log_p))))


def adjust_p_values(p_values: Sequence[float] | NDArray) -> dict[str, NDArray[np.float64]]:
    """Bonferroni, Holm and Benjamini-Hochberg adjustments of one family of p-values.

    Parameters
    ----------
    p_values : sequence of float
        Raw p-values of every comparison in the family.

    Returns
    -------
    dict
        ``{"bonferroni": ..., "holm": ..., "bh": ...}``, arrays in the input order.

    Examples
    --------
    >>> adjusted = adjust_p_values([0.01, 0.04, 0.03, 0.02])
    >>> {name: values.round(4).tolist() for name, values in adjusted.items()}
    {'bonferroni': [0.04, 0.16, 0.12, 0.08], 'holm': [0.04, 0.06, 0.06, 0.06], 'bh': [0.04, 0.04, 0.04, 0.04]}
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    ordered = p[order]
    # statsmodels' multipletests arithmetic: Holm's step-down running maximum of p_(i)·(m − i + 1),
    # Benjamini-Hochberg's step-up running minimum of p_(i)·m / i, each capped at 1.
    holm = np.maximum.accumulate(ordered * np.arange(m, 0, -1)) if m else ordered
    bh = np.minimum.accumulate((ordered * m / np.arange(1, m + 1))[::-1])[::-1] if m else ordered
    adjusted = {"bonferroni": p * m, "holm": np.empty(m), "bh": np.empty(m)}
    adjusted["holm"][order] = holm
    adjusted["bh"][order] = bh
    return {name: np.minimum(values, 1.0) for name, values in adjusted.items()}


def _pairs(cells: Cells, control: str | None) -> list[tuple[str | None, int, int]]:
    """Row indices ``(segment, i, j)`` of the comparisons in ``cells.table``."""
    table = cells.table
    arms = cells.arms
    if control is not None and str(control) not in arms:
        raise InvalidArgumentError(f"control must be one of {', '.join(arms[:20])}, got {control!r}")
    if not cells.segment_columns:
        rows = range(len(table))
        return [(None, i, j) for i in rows for j in rows if i < j]
    control_label = str(control) if control is not None else arms[0]
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(cells.segment_labels()):
        groups.setdefault(label, []).append(i)
    pairs: list[tuple[str | None, int, int]] = []
    for label, rows in groups.items():
        positions = dict(zip(table["arm"].iloc[rows], rows, strict=True))
        if control_label not in positions:
            # No control cell in this segment: nothing to compare against.
            continue
        j = positions[control_label]
        pairs.extend((label, i, j) for arm, i in positions.items() if arm != control_label)
    return pairs


def classical_comparisons(cells: Cells, control: str | None = None) -> pd.DataFrame:
    """Two-proportion tests with multiplicity corrections for an experiment.

    Parameters
    ----------
    cells : Cells
        Validated experiment data (see :func:`abpool.data.load_cells`).
    control : str, optional
        With segment columns: the arm every treatment is compared with in each
        segment (default: the first arm). Without segments all pairs are
        compared and ``control`` is only checked to exist.

    Returns
    -------
    pandas.DataFrame
        One row per comparison; columns are documented in ``CLASSICAL_COLUMNS``.
        The family for the adjustments is every row of the table.

    Examples
    --------
    >>> import pandas as pd
    >>> from abpool.data import load_cells
    >>> frame = pd.DataFrame({
    ...     "country": ["US", "US", "CN", "CN"], "variant": ["A", "B", "A", "B"],
    ...     "trials": [200, 200, 12, 10], "successes": [40, 60, 3, 7]})
    >>> table = classical_comparisons(load_cells(frame, segment="country"))
    >>> table[["segment", "arm_i", "arm_j", "test"]].values.tolist()
    [['US', 'B', 'A', 'z'], ['CN', 'B', 'A', 'fisher']]
    >>> table[["p_value", "p_bonferroni", "p_holm", "p_bh"]].round(4).values.tolist()
    [[0.0209, 0.0418, 0.0418, 0.0418], [0.0836, 0.1671, 0.0836, 0.0836]]
    """
    return _table(classical_records(cells, control), CLASSICAL_COLUMNS)


def classical_records(cells: Cells, control: str | None = None) -> list[dict[str, Any]]:
    """:func:`classical_comparisons` as records, one dict per row: what a result's JSON holds, without a DataFrame.

    Examples
    --------
    >>> from abpool.data import cells_from_counts
    >>> records = classical_records(cells_from_counts([30, 50], [100, 100]))
    >>> [(row["arm_i"], row["arm_j"], row["test"]) for row in records]
    [('A', 'B', 'z')]
    """
    table = cells.table
    trials = table["trials"].to_numpy()
    successes = table["successes"].to_numpy()
    arms = table["arm"].to_numpy()
    records = []
    for segment, i, j in _pairs(cells, control):
        test, statistic, p_value = pair_test(int(successes[i]), int(trials[i]), int(successes[j]), int(trials[j]))
        rate_i, rate_j = successes[i] / trials[i], successes[j] / trials[j]
        records.append(
            {
                "segment": segment,
                "arm_i": str(arms[i]),
                "arm_j": str(arms[j]),
                "trials_i": int(trials[i]),
                "successes_i": int(successes[i]),
                "trials_j": int(trials[j]),
                "successes_j": int(successes[j]),
                "rate_i": float(rate_i),
                "rate_j": float(rate_j),
                "difference": float(rate_i - rate_j),
                "test": test,
                "statistic": statistic,
                "p_value": p_value,
            }
        )
    return _corrected(records)


WELCH_COLUMNS = {
    "segment": CLASSICAL_COLUMNS["segment"],
    "arm_i": CLASSICAL_COLUMNS["arm_i"],
    "arm_j": CLASSICAL_COLUMNS["arm_j"],
    "n_i": "users of arm_i",
    "mean_i": "observed mean of arm_i",
    "n_j": "users of arm_j",
    "mean_j": "observed mean of arm_j",
    "difference": "mean_i - mean_j",
    "test": "'welch t' (Welch's t-test: unequal variances, Welch-Satterthwaite degrees of freedom)",
    "statistic": "t statistic",
    "p_value": CLASSICAL_COLUMNS["p_value"],
    "p_bonferroni": CLASSICAL_COLUMNS["p_bonferroni"],
    "p_holm": CLASSICAL_COLUMNS["p_holm"],
    "p_bh": CLASSICAL_COLUMNS["p_bh"],
}


def welch_comparisons(moments: ArmMoments) -> pd.DataFrame:
    """Welch's t-test of every pair of arms of a continuous metric, with multiplicity corrections.

    The classical counterpart of the means model, from each arm's ``n``, mean
    and standard deviation (scipy's ``ttest_ind_from_stats`` with
    ``equal_var=False``); p-values adjusted over every pair as in
    :func:`classical_comparisons`.

    Parameters
    ----------
    moments : ArmMoments
        Per-arm moments (see :func:`abpool.data.load_moments`), without segments.

    Returns
    -------
    pandas.DataFrame
        One row per pair ``(i, j)``, ``i`` before ``j``; columns documented in ``WELCH_COLUMNS``.

    Examples
    --------
    >>> import pandas as pd
    >>> from abpool.data.moments import load_moments
    >>> stats = pd.DataFrame({"arm": ["A", "B"], "n": [100, 100], "mean": [1.0, 1.3], "sd": [1.0, 1.0]})
    >>> welch_comparisons(load_moments(stats))[["arm_i", "arm_j", "p_value"]].round(4).values.tolist()
    [['A', 'B', 0.0351]]
    """
    return _table(welch_records(moments), WELCH_COLUMNS)


def welch_records(moments: ArmMoments) -> list[dict[str, Any]]:
    """:func:`welch_comparisons` as records, one dict per row, without a DataFrame."""
    from scipy.stats import ttest_ind_from_stats

    table = moments.table
    n = table["n"].to_numpy(dtype=float)
    mean = table["mean"].to_numpy(dtype=float)
    sd = moments.sds
    arms = table["arm"].to_numpy()
    records = []
    for i in range(len(table)):
        for j in range(i + 1, len(table)):
            statistic, p_value = ttest_ind_from_stats(mean[i], sd[i], n[i], mean[j], sd[j], n[j], equal_var=False)
            records.append(
                {
                    "segment": None,
                    "arm_i": str(arms[i]),
                    "arm_j": str(arms[j]),
                    "n_i": int(n[i]),
                    "mean_i": float(mean[i]),
                    "n_j": int(n[j]),
                    "mean_j": float(mean[j]),
                    "difference": float(mean[i] - mean[j]),
                    "test": "welch t",
                    "statistic": float(statistic),
                    "p_value": float(p_value),
                }
            )
    return _corrected(records)


def _corrected(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with each p-value adjusted over them all: ``p_bonferroni``, ``p_holm`` and ``p_bh`` added."""
    adjusted = adjust_p_values([record["p_value"] for record in records])
    columns = [values.tolist() for values in adjusted.values()]
    names = [f"p_{name}" for name in adjusted]
    return [record | dict(zip(names, values, strict=True)) for record, *values in zip(records, *columns, strict=True)]


def _table(records: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """The comparisons as a table with ``columns``, in their order."""
    return pd.DataFrame.from_records(records, columns=list(columns))
