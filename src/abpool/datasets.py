"""The article's example data, generated exactly as the article does.

Examples
--------
>>> frame = make_dataframe(100, [30, 50, 55, 60])
>>> len(frame), int(frame["success"].sum())
(400, 195)
>>> article_variants(a_trials=10)["trials"].tolist()
[10, 100, 100, 100]
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

ARTICLE_TRIALS = 100
ARTICLE_SUCCESSES = (30, 50, 55, 60)


def article_variants(a_trials: int = ARTICLE_TRIALS) -> pd.DataFrame:
    """The four-variant test of the article as aggregated cells.

    Variants A–D have 100 trials and 30%, 50%, 55%, 60% success. With
    ``a_trials=10`` variant A keeps its 30% rate on only 10 trials (the
    article's second scenario).
    """
    trials = [a_trials, ARTICLE_TRIALS, ARTICLE_TRIALS, ARTICLE_TRIALS]
    successes = [round(0.30 * a_trials), *ARTICLE_SUCCESSES[1:]]
    return pd.DataFrame({"variant": list("ABCD"), "trials": trials, "successes": successes})


def article_variants_scenarios() -> dict[str, pd.DataFrame]:
    """Both of the article's variants scenarios, keyed by a readable label."""
    return {
        "A with 100 trials": article_variants(ARTICLE_TRIALS),
        "A with 10 trials": article_variants(10),
    }


def make_dataframe(n: int, successes: Sequence[int]) -> pd.DataFrame:
    """One row per user, as the article's ``make_dataframe(n, s)`` builds it.

    Rows are Canada control, Canada treatment, China control, China treatment,
    ``n`` users each; the first ``successes[k]`` users of block ``k`` converted.
    """
    if len(successes) != 4:
        raise ValueError("make_dataframe needs four success counts (Canada 0/1, China 0/1)")
    frame = pd.DataFrame(
        {
            "success": [0] * (n * 4),
            "country": ["Canada"] * (2 * n) + ["China"] * (2 * n),
            "treated": [0] * n + [1] * n + [0] * n + [1] * n,
        }
    )
    for block, count in enumerate(successes):
        start = block * n
        frame.loc[start : start + count - 1, "success"] = 1
    return frame
