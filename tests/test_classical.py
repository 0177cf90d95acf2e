"""The classical comparison: p-values, adjustments, and its place beside the posterior."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

import abpool
from abpool.classical import CLASSICAL_COLUMNS, adjust_p_values, classical_comparisons, pair_test
from abpool.data import cells_from_counts, load_cells
from abpool.errors import InvalidArgumentError

ABPOOL = [sys.executable, "-m", "abpool"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------ p-values
def test_large_counts_use_the_z_test_of_statsmodels(rng) -> None:
    for _ in range(50):
        n = rng.integers(50, 5_000, size=2)
        y = rng.binomial(n, rng.uniform(0.2, 0.8))
        test, z, p = pair_test(int(y[0]), int(n[0]), int(y[1]), int(n[1]))
        pooled = y.sum() / n.sum()
        if min(n.min() * pooled, n.min() * (1 - pooled)) < 5:
            continue
        expected_z, expected_p = proportions_ztest(y, n)
        assert test == "z"
        assert z == pytest.approx(expected_z, rel=1e-12, abs=1e-12)
        assert p == pytest.approx(expected_p, rel=1e-12, abs=1e-300)


def test_small_counts_use_fishers_exact_test(rng) -> None:
    for _ in range(50):
        n = rng.integers(1, 12, size=2)
        y = rng.binomial(n, rng.uniform(0.05, 0.95))
        test, z, p = pair_test(int(y[0]), int(n[0]), int(y[1]), int(n[1]))
        pooled = y.sum() / n.sum()
        if min(n.min() * pooled, n.min() * (1 - pooled)) >= 5:
            # Two arms of 10-11 users near 50%: every expected count reaches 5, so the z-test applies.
            assert test == "z"
            continue
        assert test == "fisher" and np.isnan(z)
        expected = fisher_exact([[y[0], n[0] - y[0]], [y[1], n[1] - y[1]]], alternative="two-sided")[1]
        assert p == pytest.approx(expected, rel=1e-12)


def test_the_switch_to_fisher_is_at_an_expected_count_of_five() -> None:
    # 5 + 5 of 20: pooled 0.5, every expected count exactly 5 -> z-test.
    assert pair_test(5, 10, 5, 10)[0] == "z"
    # 4 + 5 of 20: pooled 0.45, expected successes 4.5 < 5 -> Fisher.
    assert pair_test(4, 10, 5, 10)[0] == "fisher"
    # Nothing but failures: the z statistic is undefined, Fisher says p = 1.
    assert pair_test(0, 50, 0, 50) == ("fisher", pytest.approx(float("nan"), nan_ok=True), 1.0)


def test_hand_computed_z_test() -> None:
    # 30/100 vs 50/100: pooled 0.4, se = sqrt(0.4 * 0.6 * 2/100) = 0.0692820, z = -0.2 / se.
    test, z, p = pair_test(30, 100, 50, 100)
    assert test == "z"
    assert z == pytest.approx(-2.886751, abs=1e-6)
    assert p == pytest.approx(0.0038924, abs=1e-7)


# -------------------------------------------------------------- adjustments
@pytest.mark.parametrize(
    ("p", "bonferroni", "holm", "bh"),
    [
        # m = 5. Holm: sorted p times 5,4,3,2,1 then a running max; BH: sorted p times 5/rank then a
        # running min from the largest.
        (
            [0.001, 0.01, 0.02, 0.5, 0.04],
            [0.005, 0.05, 0.1, 1.0, 0.2],
            [0.005, 0.04, 0.06, 0.5, 0.08],
            [0.005, 0.025, 0.02 * 5 / 3, 0.5, 0.05],
        ),
        # Monotonicity at work: raw Holm values 0.03, 0.022, 0.012 become 0.03 throughout;
        # raw BH values 0.03, 0.0165, 0.012 become 0.012 throughout.
        ([0.01, 0.011, 0.012], [0.03, 0.033, 0.036], [0.03, 0.03, 0.03], [0.012, 0.012, 0.012]),
        # A single comparison is its own family.
        ([0.2], [0.2], [0.2], [0.2]),
        # Bonferroni is capped at 1.
        ([0.6, 0.7], [1.0, 1.0], [1.0, 1.0], [0.7, 0.7]),
    ],
)
def test_adjustments_follow_their_definitions(p, bonferroni, holm, bh) -> None:
    adjusted = adjust_p_values(p)
    np.testing.assert_allclose(adjusted["bonferroni"], bonferroni, rtol=1e-12)
    np.testing.assert_allclose(adjusted["holm"], holm, rtol=1e-12)
    np.testing.assert_allclose(adjusted["bh"], bh, rtol=1e-12)


def test_adjustments_agree_with_statsmodels(rng) -> None:
    families = [
        rng.uniform(0, 0.2, size=30),
        rng.choice([0.0, 0.01, 0.04, 0.5, 1.0], size=25),  # ties, zeros and ones
        np.array([0.3]),
        np.array([1e-300, 1e-12, 0.9]),
    ]
    for p in families:
        adjusted = adjust_p_values(p)
        for ours, theirs in (("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")):
            np.testing.assert_allclose(adjusted[ours], multipletests(p, method=theirs)[1], rtol=1e-12)
    assert all(values.size == 0 for values in adjust_p_values([]).values())


# ------------------------------------------------------------- comparisons
def test_all_pairs_without_segments() -> None:
    cells = cells_from_counts([30, 50, 55, 60, 3], [100, 100, 100, 100, 9])
    table = classical_comparisons(cells)
    assert list(table.columns) == list(CLASSICAL_COLUMNS)
    assert len(table) == 10
    assert table[["arm_i", "arm_j"]].values.tolist()[:4] == [["A", "B"], ["A", "C"], ["A", "D"], ["A", "E"]]
    assert table["segment"].isna().all()
    np.testing.assert_allclose(table["difference"], table["rate_i"] - table["rate_j"])
    # E has 9 trials: its comparisons have expected successes of about 2-5 and use Fisher.
    assert set(table.loc[table["arm_j"] == "E", "test"]) == {"fisher"}
    assert set(table.loc[table["arm_j"] != "E", "test"]) == {"z"}
    adjusted = adjust_p_values(table["p_value"])
    for name in ("bonferroni", "holm", "bh"):
        np.testing.assert_allclose(table[f"p_{name}"], adjusted[name])
    assert (table["p_bonferroni"] >= table["p_holm"] - 1e-15).all()
    assert (table["p_holm"] >= table["p_value"]).all() and (table["p_bh"] >= table["p_value"]).all()


def test_treatments_against_control_within_segments() -> None:
    frame = pd.DataFrame(
        {
            "country": ["US", "US", "US", "US", "US", "US", "CN", "CN", "CN"],
            "device": ["web", "web", "web", "app", "app", "app", "web", "web", "web"],
            "variant": ["A", "B", "C", "A", "B", "C", "A", "B", "C"],
            "trials": [500, 500, 500, 300, 300, 300, 40, 40, 40],
            "successes": [100, 130, 90, 60, 61, 75, 4, 9, 5],
        }
    )
    cells = load_cells(frame, segment=["country", "device"])
    table = classical_comparisons(cells, control="B")
    assert table[["segment", "arm_i", "arm_j"]].values.tolist() == [
        ["US / web", "A", "B"],
        ["US / web", "C", "B"],
        ["US / app", "A", "B"],
        ["US / app", "C", "B"],
        ["CN / web", "A", "B"],
        ["CN / web", "C", "B"],
    ]
    row = table.iloc[0]
    assert (row.successes_i, row.trials_i, row.successes_j, row.trials_j) == (100, 500, 130, 500)
    assert row.p_value == pytest.approx(proportions_ztest(np.array([100, 130]), np.array([500, 500]))[1])
    # The family is all six comparisons.
    np.testing.assert_allclose(table["p_bonferroni"], np.minimum(1.0, 6 * table["p_value"]))
    default = classical_comparisons(cells)
    assert set(default["arm_j"]) == {"A"}


def test_a_segment_without_the_control_is_skipped() -> None:
    frame = pd.DataFrame(
        {
            "country": ["US", "US", "CN"],
            "variant": ["A", "B", "B"],
            "trials": [100, 100, 100],
            "successes": [10, 20, 30],
        }
    )
    table = classical_comparisons(load_cells(frame, segment="country"))
    assert table[["segment", "arm_i", "arm_j"]].values.tolist() == [["US", "B", "A"]]


def test_unknown_control_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="control must be one of A, B, got 'Z'"):
        classical_comparisons(cells_from_counts([1, 2], [10, 10]), control="Z")


# ---------------------------------------------------- beside the posterior
def test_result_shows_the_classical_view_beside_prob_greater(seed) -> None:
    result = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=seed, draws=4_000)
    table = result.classical()
    assert len(table) == 6
    for row in table.itertuples():
        assert row.prob_greater == pytest.approx(result.prob_greater(row.arm_i, row.arm_j), abs=1e-12)
    payload = result.to_dict()
    assert len(payload["classical"]) == 6
    first = payload["classical"][0]
    assert {"arm_i", "arm_j", "p_value", "p_bonferroni", "p_holm", "p_bh", "prob_greater"} <= set(first)
    assert first["p_value"] == pytest.approx(proportions_ztest(np.array([30, 50]), np.array([100, 100]))[1])


def test_cli_classical_table_and_json(article_cells_csv) -> None:
    proc = run("variants", article_cells_csv, "--classical", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    for text in ("Classical comparison", "Bonferroni", "Holm", "BH", "P(i > j)", "0.0234"):
        assert text in proc.stdout
    plain = run("variants", article_cells_csv, "--seed", "2")
    assert "Classical comparison" not in plain.stdout

    proc = run("analyze", article_cells_csv, "--classical", "--json", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    classical = json.loads(proc.stdout)["classical"]
    assert [(c["arm_i"], c["arm_j"]) for c in classical][:3] == [("A", "B"), ("A", "C"), ("A", "D")]
    assert classical[0]["p_bonferroni"] == pytest.approx(0.0233545, abs=1e-6)
    assert all(0.0 <= c["prob_greater"] <= 1.0 for c in classical)
