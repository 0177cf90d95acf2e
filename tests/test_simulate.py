"""Calibration studies (``abpool.calibration`` and ``abpool simulate``) and simulation-based calibration."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, chisquare
from typer.testing import CliRunner

from abpool.calibration import (
    RuleSettings,
    SegmentsDesign,
    VariantsDesign,
    bayes_claims,
    classical_claims,
    make_experiments,
    run_study,
    score_claims,
)
from abpool.calibration.study import wilson_interval
from abpool.classical import classical_comparisons, pair_test
from abpool.cli import app
from abpool.data import cells_from_counts
from abpool.errors import InvalidArgumentError
from abpool.variants import fit_variants
from abpool.variants.priors import LogNormalPrior

ABPOOL = [sys.executable, "-m", "abpool"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------ designs
def test_design_truth_is_the_declared_one() -> None:
    assert VariantsDesign(arms=3, trials=10, base_rate=0.2).true_rates().tolist() == [0.2, 0.2, 0.2]
    design = VariantsDesign(arms=5, trials=10, base_rate=0.2, effect=-0.1, effect_arms=2)
    np.testing.assert_allclose(design.true_rates(), [0.2, 0.2, 0.2, 0.1, 0.1])
    i, j = design.comparisons()
    assert i.size == j.size == 10 and (i < j).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": 1}, "arms must be an integer of at least 2"),
        ({"trials": 0}, "trials must be an integer of at least 1"),
        ({"base_rate": 1.0}, "base rate must be strictly between 0 and 1"),
        ({"base_rate": float("nan")}, "base rate must be a finite number"),
        ({"effect": 0.6}, "base rate + effect must be strictly between 0 and 1"),
        ({"effect": 0.1, "effect_arms": 3}, "effect arms must be between 1 and arms - 1 = 2"),
    ],
)
def test_bad_designs_are_named(kwargs, message) -> None:
    with pytest.raises(InvalidArgumentError, match=message.replace("+", r"\+")):
        VariantsDesign(**{"arms": 3, "trials": 10, "base_rate": 0.5, **kwargs})


def test_make_experiments_is_reproducible_and_follows_the_truth() -> None:
    design = VariantsDesign(arms=3, trials=40, base_rate=0.3, effect=0.2)
    first = make_experiments(design, experiments=50, seed=11)
    assert first.equals(make_experiments(design, experiments=50, seed=11))
    assert not first.equals(make_experiments(design, experiments=50, seed=12))
    # The first experiments do not depend on how many are made.
    pd.testing.assert_frame_equal(first.head(9), make_experiments(design, experiments=3, seed=11))
    assert first["arm"].tolist()[:3] == ["A", "B", "C"]
    assert (first["successes"] <= first["trials"]).all()


# -------------------------------------------------------------------- rules
def test_scores_count_false_wrong_sign_and_correct_claims() -> None:
    # Comparisons: equal rates, i truly better, j truly better.
    truth = np.array([0, 1, -1], dtype=np.int8)
    claims = np.array(
        [
            [1, 1, -1],  # a false claim on the null pair, two correct ones
            [0, -1, 0],  # a wrong sign
            [0, 0, 0],  # nothing
        ],
        dtype=np.int8,
    )
    # Last column: the comparisons that truly differ (two here), the same for every rule.
    assert score_claims(claims, truth).tolist() == [[3, 1, 0, 2, 2], [1, 1, 1, 0, 2], [0, 0, 0, 0, 2]]


def test_bayes_claims_use_threshold_and_loss() -> None:
    # Column 0 beats column 1 in 3 draws of 4 (binary fractions, so sums are exact); the loss of
    # claiming 0 is mean(max(theta_1 - theta_0, 0)) = 0.125 / 4 = 0.03125, the same for the reversed pair.
    draws = np.array([[0.625, 0.5], [0.75, 0.5], [0.375, 0.5], [0.875, 0.5]])
    i, j = np.array([0, 1]), np.array([1, 0])
    assert bayes_claims(draws, i, j, 0.75, None).tolist() == [1, -1]
    assert bayes_claims(draws, i, j, 0.76, None).tolist() == [0, 0]
    assert bayes_claims(draws, i, j, 0.75, 0.0313).tolist() == [1, -1]
    assert bayes_claims(draws, i, j, 0.75, 0.03125).tolist() == [0, 0]


def test_classical_claims_match_the_classical_table(rng) -> None:
    trials = rng.integers(20, 400, size=6)
    successes = rng.binomial(trials, 0.3)
    table = classical_comparisons(cells_from_counts(successes, trials))
    claims = classical_claims(successes, trials, *np.triu_indices(6, 1), 0.05)
    sign = np.sign(table["difference"].to_numpy())
    columns = {"uncorrected": "p_value", "bonferroni": "p_bonferroni", "holm": "p_holm", "bh": "p_bh"}
    for rule, column in columns.items():
        expected = sign * (table[column].to_numpy() < 0.05)
        np.testing.assert_array_equal(claims[rule], expected)


def test_rule_settings_validation() -> None:
    with pytest.raises(InvalidArgumentError, match=r"threshold must be above 0\.5 and below 1"):
        RuleSettings(thresholds=(0.4,))
    with pytest.raises(InvalidArgumentError, match="loss bound must be a positive"):
        RuleSettings(loss_bound=0.0)
    with pytest.raises(InvalidArgumentError, match="prior must be one of bda, lognormal"):
        RuleSettings(prior="flat")


def test_wilson_interval_of_a_proportion() -> None:
    # 10 of 100: centre (10 + 1.96²/2) / (100 + 1.96²), half-width 1.96 sqrt(0.09 · 100 + 1.96²/4) / (100 + 1.96²).
    z = 1.959963984540054
    centre = (10 + z**2 / 2) / (100 + z**2)
    half = z * np.sqrt(100 * 0.1 * 0.9 + z**2 / 4) / (100 + z**2)
    np.testing.assert_allclose(wilson_interval(0.1, 100), [centre - half, centre + half], rtol=1e-9)


# ------------------------------------------------------------------ studies
def test_uncorrected_false_positive_rate_matches_the_exact_size(seed) -> None:
    """Two arms: the simulated error rate equals the test's exact size, within Monte Carlo error."""
    n, rate, experiments = 30, 0.5, 300
    pmf = binom.pmf(np.arange(n + 1), n, rate)
    rejects = np.array([[pair_test(a, n, b, n)[2] < 0.05 for b in range(n + 1)] for a in range(n + 1)])
    size = float(pmf @ rejects @ pmf)
    study = run_study(VariantsDesign(arms=2, trials=n, base_rate=rate), experiments=experiments, seed=seed, workers=1)
    rule = {m["rule"]: m for m in study.metrics()}["uncorrected"]
    # 4.5 standard errors: a false alarm about once in 150,000 runs.
    assert abs(rule["family_wise_error"] - size) <= 4.5 * np.sqrt(size * (1 - size) / experiments)
    assert rule["power"] is None and rule["wrong_sign_rate"] is None
    assert rule["false_discovery_rate"] == rule["family_wise_error"]  # A/A: every claim is false


def test_an_unmissable_effect_is_always_found(seed) -> None:
    design = VariantsDesign(arms=2, trials=200, base_rate=0.1, effect=0.8)
    study = run_study(design, RuleSettings(loss_bound=0.01), experiments=20, seed=seed, workers=1)
    for rule in study.metrics():
        assert rule["power"] == 1.0, rule["rule"]
        assert rule["family_wise_error"] == 0.0 and rule["wrong_sign_rate"] == 0.0
        low, high = rule["power_ci"]
        assert low < 1.0 == high


def test_improper_posteriors_are_refused_not_hidden() -> None:
    # One trial per arm at a 1% rate: most experiments are all-zero and the article's prior refuses them.
    study = run_study(VariantsDesign(arms=2, trials=1, base_rate=0.01), experiments=30, seed=3, workers=1)
    assert study.describe()["refused_fits"] >= 1
    assert {m["rule"]: m for m in study.metrics()}["bayes_p95"]["mean_claims"] == 0.0


# ---------------------------------------------------------------------- CLI
def test_cli_json_contract_and_same_seed_same_study_for_any_worker_count() -> None:
    args = ["simulate", "--arms", "3", "--experiments", "16", "--seed", "5", "--json"]
    one = run(*args, "--workers", "1")
    two = run(*args, "--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    payload = json.loads(one.stdout)
    assert json.loads(two.stdout)["rules"] == payload["rules"]
    assert one.stderr == ""  # no progress bar with --json
    settings = payload["settings"]
    assert settings["arms"] == [3] and settings["experiments"] == 16 and settings["seed"] == 5
    assert settings["trials"] == 100 and settings["base_rate"] == 0.5 and settings["effect"] is None
    assert [r["rule"] for r in payload["rules"]] == ["bayes_p95", "bonferroni", "holm", "bh", "uncorrected"]
    for rule in payload["rules"]:
        low, high = rule["family_wise_error_ci"]
        assert 0.0 <= low <= rule["family_wise_error"] <= high <= 1.0
        assert 0.0 <= rule["false_discovery_rate"] <= 1.0
        assert rule["power"] is None


def test_cli_effect_study_writes_table_json_and_figure(tmp_path) -> None:
    out = tmp_path / "study"
    proc = run(
        "simulate", "--arms", "2,3", "--trials", "50", "--effect", "0.3", "--experiments", "8",
        "--seed", "1", "--threshold", "0.9", "--threshold", "0.99", "--loss-bound", "0.01",
        "--workers", "1", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for text in ("bayes_p90", "bayes_p99_loss0.01", "bonferroni", "family-wise", "power", "seed 1"):
        assert text in proc.stdout
    table = pd.read_csv(out / "calibration.csv")
    assert sorted(set(table["arms"])) == [2, 3]
    assert {"family_wise_error_ci_low", "power_ci_high"} <= set(table.columns)
    payload = json.loads((out / "calibration.json").read_text())
    assert payload["settings"]["effect"] == 0.3 and payload["settings"]["effect_arms"] == 1
    assert all(r["power"] is not None for r in payload["rules"])
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arms", "1"], "arms must be an integer of at least 2"),
        (["--arms", "4,x"], "arms must be an integer, got 'x'"),
        (["--trials", "0"], "trials must be an integer of at least 1"),
        (["--base-rate", "1.5"], "base rate must be strictly between 0 and 1"),
        (["--base-rate", "0"], "base rate must be strictly between 0 and 1"),
        (["--experiments", "0"], "experiments must be an integer of at least 1"),
        (["--effect", "0.6"], "base rate + effect must be strictly between 0 and 1"),
        (["--effect", "0.1", "--effect-arms", "4"], "effect arms must be between 1 and arms - 1 = 3"),
        (["--threshold", "0.3"], "threshold must be above 0.5"),
        (["--loss-bound", "-1"], "loss bound must be a positive"),
        (["--alpha", "2"], "alpha must be strictly between 0 and 1"),
        (["--prior", "flat"], "prior must be one of bda, lognormal"),
        (["--draws", "5"], "draws must be an integer of at least 1000"),
        (["--workers", "0"], "workers must be an integer of at least 1"),
        (["--seed", "-3"], "seed must be an integer of at least 0"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, message) -> None:
    result = CliRunner().invoke(app, ["simulate", "--experiments", "5", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abpool: error: ")
    assert message in lines[0]


# ------------------------------------------- simulation-based calibration
@pytest.mark.slow
def test_simulation_based_calibration_of_the_variants_model(seed) -> None:
    """Ranks of true values among posterior draws are uniform when data come from the prior.

    With ``L`` independent draws per fit, the rank of the true value is uniform on
    0..L exactly when the posterior is right (Talts et al. 2018). Ranks go into 10
    equal bins; a chi-square test per quantity at level 5e-4 gives, by Bonferroni
    over the two quantities, a false-alarm probability of at most 1e-3 per run.
    """
    rng = np.random.default_rng(seed)
    prior = LogNormalPrior()
    replicates, draws, bins, arms = 1_000, 1_999, 10, 4
    ranks = np.empty((replicates, 2), dtype=int)
    for r in range(replicates):
        a, b = prior.sample(rng, 1)
        rates = rng.beta(a[0], b[0], size=arms)
        trials = rng.integers(5, 200, size=arms)
        successes = rng.binomial(trials, rates)
        cells = cells_from_counts(successes, trials) if r == 0 else _cells(successes, trials)
        result = fit_variants(cells, prior=prior, draws=draws, seed=int(rng.integers(2**31)), on_unconverged="ignore")
        truths = (rates[0], a[0] / (a[0] + b[0]))
        posterior = (result.rate_draws()[:, 0], result.tree["posterior"]["population_mean"].values.ravel())
        for k, (truth, sample) in enumerate(zip(truths, posterior, strict=True)):
            # Ties (rates that underflow to 0 or 1) are broken at random, as SBC requires.
            below, equal = np.sum(sample < truth), np.sum(sample == truth)
            ranks[r, k] = below + rng.integers(0, equal + 1)
    for k, name in enumerate(("first rate", "population mean a/(a+b)")):
        counts = np.bincount(ranks[:, k] * bins // (draws + 1), minlength=bins)
        p_value = chisquare(counts).pvalue
        assert p_value > 5e-4, f"{name}: rank histogram {counts.tolist()} is not uniform (p = {p_value:.2g})"


def _cells(successes: np.ndarray, trials: np.ndarray):
    """Cells without the DuckDB round trip (the counts are valid by construction)."""
    from abpool.data import Cells

    table = pd.DataFrame({"arm": ["A", "B", "C", "D"], "trials": trials, "successes": successes})
    return Cells(table, (), "arm", "cells", "simulation", len(table))


def test_an_unwritable_out_is_refused_before_the_study_runs(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["simulate", "--experiments", "5", "--out", str(blocker / "study")])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("abpool: error: cannot write the study to")
    assert result.stdout == ""


# ------------------------------------------------------------ segments form
# The segments tests share one worker with tests/test_segments.py, so the sampler's compiled models are reused.
segments_group = pytest.mark.xdist_group("segments")


def test_segments_truth_is_drawn_per_experiment_from_the_declared_distributions(rng) -> None:
    from scipy.special import logit

    design = SegmentsDesign(segments=2_000, trials=10, base_rate=0.2, effect=0.3, effect_spread=0.5)
    rates = design.draw_truth(rng)
    a, b = logit(rates[0::2]), logit(rates[1::2]) - logit(rates[0::2])
    # Means and sds within 5 standard errors of the declared ones (2,000 draws each).
    assert abs(a.mean() - logit(0.2)) < 5 * 0.2 / np.sqrt(2_000) and abs(a.std() - 0.2) < 5 * 0.2 / np.sqrt(4_000)
    assert abs(b.mean() - 0.3) < 5 * 0.5 / np.sqrt(2_000) and abs(b.std() - 0.5) < 5 * 0.5 / np.sqrt(4_000)
    assert not np.array_equal(rates, design.draw_truth(rng))
    aa = SegmentsDesign(segments=3, trials=10, base_rate=0.2).draw_truth(rng)
    np.testing.assert_array_equal(aa[0::2], aa[1::2])
    treatment, control = design.comparisons()
    assert (treatment == control + 1).all() and control.tolist()[:3] == [0, 2, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segments": 1}, "segments must be an integer of at least 2"),
        ({"trials": 0}, "trials must be an integer of at least 1"),
        ({"base_rate": 0.0}, "base rate must be strictly between 0 and 1"),
        ({"effect": float("inf")}, "effect must be a finite number"),
        ({"effect_spread": -0.1}, "effect spread must be zero or positive"),
        ({"base_rate_spread": -1}, "base rate spread must be zero or positive"),
        ({"parameterisation": "both"}, "parameterisation must be one of conditioned, centred, non-centred"),
    ],
)
def test_bad_segments_designs_are_named(kwargs, message) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        SegmentsDesign(**{"segments": 3, "trials": 10, "base_rate": 0.5, **kwargs})


def test_segments_classical_claims_are_the_classical_segment_table(rng) -> None:
    design = SegmentsDesign(segments=5, trials=300, base_rate=0.1, effect=0.5, effect_spread=0.5)
    frame = make_experiments(design, experiments=1, seed=int(rng.integers(2**31)))
    from abpool.data import load_cells

    table = classical_comparisons(
        load_cells(frame.drop(columns=["experiment", "true_rate"]), segment="segment"), control="control"
    )
    successes, trials = frame["successes"].to_numpy(), frame["trials"].to_numpy()
    claims = classical_claims(successes, trials, *design.comparisons(), 0.05)
    sign = np.sign(table["difference"].to_numpy())
    for rule, column in {
        "uncorrected": "p_value",
        "bonferroni": "p_bonferroni",
        "holm": "p_holm",
        "bh": "p_bh",
    }.items():
        np.testing.assert_array_equal(claims[rule], sign * (table[column].to_numpy() < 0.05))


def test_segments_parameterisation_defaults_to_the_models_and_can_be_fixed() -> None:
    assert SegmentsDesign(segments=4, trials=100, base_rate=0.5).form == "conditioned"
    forced = SegmentsDesign(segments=4, trials=100, base_rate=0.5, parameterisation="centred")
    assert forced.form == "centred" and forced.describe()["parameterisation"] == "centred"


@segments_group
def test_segments_study_finds_an_unmissable_effect_and_reports_progress(seed) -> None:
    # Two segments of 100 users per cell with the article's prior: the same compiled model as the article's data.
    design = SegmentsDesign(segments=2, trials=100, base_rate=0.3, effect=4.0)
    ticks: list[int] = []
    study = run_study(
        design,
        RuleSettings(model="segments", draws=1_000, loss_bound=0.05),
        experiments=2,
        seed=seed,
        progress=ticks.append,
    )
    assert ticks == [1, 1]  # one tick per experiment, not per chunk
    described = study.describe()
    assert described["true_differences"] == 2 and described["refused_fits"] == 0
    assert 0 <= described["fits_with_warnings"] <= 2
    for rule in study.metrics():
        assert rule["power"] == 1.0 and rule["family_wise_error"] == 0.0 and rule["wrong_sign_rate"] == 0.0, rule


@segments_group
def test_segments_cli_json_contract_and_same_seed_same_study(tmp_path) -> None:
    args = ["simulate", "--segments", "2", "--trials", "100", "--experiments", "2", "--seed", "4", "--draws", "1000"]
    as_json = CliRunner().invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert as_json.stderr == ""  # no progress bar with --json
    payload = json.loads(as_json.stdout)
    settings = payload["settings"]
    assert settings["segments"] == [2] and settings["model"] == "segments" and settings["effect"] is None
    assert settings["engine"].startswith("mcmc") and settings["chains"] == 4 and settings["draws"] == 1_000
    assert settings["parameterisation"] == "conditioned" and settings["prior"].startswith("article")
    study = payload["studies"][0]
    assert study["comparisons"] == 2 and study["true_differences"] == 0 and study["experiments"] == 2
    assert {"refused_fits", "fits_with_warnings"} <= set(study)
    assert [r["rule"] for r in payload["rules"]] == ["bayes_p95", "bonferroni", "holm", "bh", "uncorrected"]
    for rule in payload["rules"]:
        low, high = rule["family_wise_error_ci"]
        assert 0.0 <= low <= rule["family_wise_error"] <= high <= 1.0
        assert rule["power"] is None and rule["power_ci"] is None and rule["segments"] == 2
    # The same seed again, with the table and the files: the same study.
    out = tmp_path / "study"
    table = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert table.exit_code == 0, table.output
    for text in ("segments", "bayes_p95", "A/A (treatment = control", "conditioned", "seed 4"):
        assert text in table.stdout
    assert json.loads((out / "calibration.json").read_text())["rules"] == payload["rules"]
    assert pd.read_csv(out / "calibration.csv")["segments"].tolist() == [2] * 5
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--segments", "1"], "segments must be an integer of at least 2"),
        (["--segments", "4,x"], "segments must be an integer, got 'x'"),
        (["--segments", "4", "--arms", "3"], "--arms does not apply to a segments study"),
        (["--segments", "4", "--workers", "2"], "--workers does not apply to a segments study"),
        (["--segments", "4", "--effect-arms", "2"], "--effect-arms does not apply to a segments study"),
        (["--segments", "4", "--effect-spread", "-0.5"], "effect spread must be zero or positive"),
        (["--segments", "4", "--base-rate-spread", "nan"], "base rate spread must be a finite number"),
        (["--segments", "4", "--prior", "bda"], "prior must be one of article, flat, conservative (the segments model"),
        (["--segments", "4", "--draws", "50"], "draws must be an integer of at least 1000"),
        (["--effect-spread", "0.2"], "--effect-spread applies only to a segments study"),
    ],
)
def test_bad_segments_options_exit_2_with_one_line(args, message) -> None:
    result = CliRunner().invoke(app, ["simulate", "--experiments", "5", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abpool: error: ")
    assert message in lines[0]
