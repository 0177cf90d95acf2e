"""The means model on the result contract: its answers against quadrature, its data, its command line."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.stats

import abpool
from abpool.continuous.priors import HalfCauchyPrior, HalfNormalPrior
from abpool.data.moments import ArmMoments, load_moments

DRAWS = 20_000
# Four Monte Carlo standard errors either side: a correct engine fails one comparison in ~16,000.
Z = 4.0

STATS = pd.DataFrame(
    {
        "arm": ["A", "B", "C", "D"],
        "n": [500, 450, 520, 480],
        "mean": [10.0, 10.5, 11.0, 9.8],
        "sd": [5.0, 6.0, 5.5, 4.5],
    }
)


def _quadrature(ybar, sigma, log_prior):
    """Posterior expectations over tau by adaptive quadrature of BDA3 eq. 5.21, written out independently."""
    ybar, var = np.asarray(ybar, float), np.asarray(sigma, float) ** 2

    def parts(tau):
        w = 1.0 / (var + tau**2)
        v_mu = 1.0 / w.sum()
        mu_hat = v_mu * (w * ybar).sum()
        log_density = (
            log_prior(tau)
            + 0.5 * math.log(v_mu)
            - 0.5 * np.log(var + tau**2).sum()
            - 0.5 * (w * (ybar - mu_hat) ** 2).sum()
        )
        return log_density, mu_hat, v_mu, var / (var + tau**2)

    peak = max(parts(t)[0] for t in np.geomspace(1e-3, 1e3, 400) * math.sqrt(var.mean()))

    def expect(fn):
        def integrand(tau):
            log_density, mu_hat, v_mu, shrink = parts(tau)
            return math.exp(log_density - peak) * fn(mu_hat, v_mu, shrink)

        return scipy.integrate.quad(integrand, 0, np.inf, limit=400, epsabs=0, epsrel=1e-10)[0]

    total = expect(lambda *_: 1.0)
    return lambda fn: expect(fn) / total


def _prob_greater(i, j, ybar, var):
    def given_tau(mu_hat, v_mu, shrink):
        mean = (shrink[i] - shrink[j]) * mu_hat + (1 - shrink[i]) * ybar[i] - (1 - shrink[j]) * ybar[j]
        variance = (shrink[i] - shrink[j]) ** 2 * v_mu + (1 - shrink[i]) * var[i] + (1 - shrink[j]) * var[j]
        return scipy.stats.norm.cdf(mean / math.sqrt(variance))

    return given_tau


@pytest.mark.parametrize("prior", ["flat", "half-cauchy"])
def test_answers_match_quadrature(prior, seed) -> None:
    result = abpool.analyze_means(STATS, prior=prior, seed=seed)
    sigma = STATS["sd"].to_numpy() / np.sqrt(STATS["n"].to_numpy())
    ybar, var = STATS["mean"].to_numpy(), sigma**2
    if prior == "flat":
        expect = _quadrature(ybar, sigma, lambda tau: 0.0)
    else:
        scale = HalfCauchyPrior().resolve(sigma).scale
        expect = _quadrature(ybar, sigma, lambda tau: -math.log1p((tau / scale) ** 2))
    summary = result.summary().set_index("arm")
    for k, arm in enumerate(STATS["arm"]):
        truth = expect(lambda mu_hat, v_mu, shrink, k=k: shrink[k] * mu_hat + (1 - shrink[k]) * ybar[k])
        error = summary.loc[arm, "mean_sd"] / math.sqrt(DRAWS)
        assert abs(summary.loc[arm, "posterior_mean"] - truth) < Z * error
        pooling = expect(lambda mu_hat, v_mu, shrink, k=k: shrink[k])
        spread = math.sqrt(max(expect(lambda mu_hat, v_mu, shrink, k=k: shrink[k] ** 2) - pooling**2, 0.0))
        assert abs(summary.loc[arm, "pooling"] - pooling) < Z * spread / math.sqrt(DRAWS) + 1e-12
    for i, j in ((1, 0), (2, 1), (3, 0)):
        truth = expect(_prob_greater(i, j, ybar, var))
        found = result.prob_greater(STATS["arm"][i], STATS["arm"][j])
        assert abs(found - truth) < Z * math.sqrt(truth * (1 - truth) / DRAWS) + 1e-4


def revenue(n_per_arm: int = 400, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.repeat(["A", "B", "C"], n_per_arm)
    bought = rng.random(arm.size) < 0.2
    value = np.where(bought, np.round(rng.lognormal(3.0, 1.2, arm.size), 2), 0.0)
    return pd.DataFrame({"variant": arm, "revenue": value})


def test_unit_rows_and_their_statistics_give_the_same_answers() -> None:
    rows = revenue()
    stats = rows.groupby("variant")["revenue"].agg(n="count", mean="mean", sd="std").reset_index()
    from_rows = abpool.analyze_means(rows, seed=5)
    from_stats = abpool.analyze_means(stats, seed=5)
    assert from_rows.cells.fingerprint == from_stats.cells.fingerprint
    numeric = from_rows.summary().select_dtypes("number")
    pd.testing.assert_frame_equal(numeric, from_stats.summary().select_dtypes("number"), rtol=1e-9)


def test_capping_is_winsorising_at_the_experiment_quantile() -> None:
    rows = revenue()
    result = abpool.analyze_means(rows, cap=0.95, seed=1)
    cap = np.quantile(rows["revenue"], 0.95)
    capped = rows.assign(revenue=rows["revenue"].clip(upper=cap))
    expected = capped.groupby("variant")["revenue"].agg(["count", "mean", "std"])
    summary = result.summary().set_index("arm")
    np.testing.assert_allclose(summary["observed_mean"], expected["mean"], rtol=1e-12)
    np.testing.assert_allclose(summary["observed_sd"], expected["std"], rtol=1e-10)
    assert result.cells.cap["value"] == pytest.approx(cap, rel=1e-12)
    assert result.settings()["cap"] == 0.95 and "--cap 0.95" in result.reproduce_command()
    assert any(label == "capping" for label, _ in result.prior_facts())


def test_classical_comparison_is_welch_on_the_raw_values() -> None:
    rows = revenue()
    table = abpool.analyze_means(rows, seed=1).classical()
    for record in table.itertuples(index=False):
        a = rows.loc[rows["variant"] == record.arm_i, "revenue"]
        b = rows.loc[rows["variant"] == record.arm_j, "revenue"]
        assert record.p_value == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert (table["p_bonferroni"] == np.minimum(3 * table["p_value"], 1.0)).all()


def test_two_arms_default_to_a_proper_prior_and_flat_is_refused() -> None:
    rows = revenue()
    two = rows[rows["variant"] != "C"]
    result = abpool.analyze_means(two, seed=1)
    assert result.prior.name == "half-cauchy" and result.prior.proper
    with pytest.raises(abpool.InvalidDataError, match="improper posterior with 2 arms"):
        abpool.analyze_means(two, prior="flat")
    scaled = abpool.analyze_means(two, prior_scale=3.0, seed=1)
    assert scaled.prior.scale == 3.0 and "--prior-scale 3" in scaled.reproduce_command()


def test_threshold_is_in_the_metric_s_units() -> None:
    result = abpool.analyze_means(STATS, seed=1)
    grand = float((STATS["n"] * STATS["mean"]).sum() / STATS["n"].sum())
    assert result.threshold == pytest.approx(0.01 * grand, rel=1e-2)
    assert "pp" not in " ".join([result.decision_rule(), *result.recommendation_sentences(), *result.sentences()])


def test_no_pooling_reference_is_each_arm_s_own_normal() -> None:
    result = abpool.analyze_means(STATS, seed=1)
    draws = result.no_pooling_draws(200_000, np.random.default_rng(0))[:, 0, :]
    sigma = STATS["sd"].to_numpy() / np.sqrt(STATS["n"].to_numpy())
    np.testing.assert_allclose(draws.mean(axis=0), STATS["mean"], atol=Z * sigma.max() / math.sqrt(200_000))
    np.testing.assert_allclose(draws.std(axis=0), sigma, rtol=0.01)
    checked = result.with_sensitivity()
    labels = [entry["label"] for entry in checked.prior_sensitivity["panel"]]
    assert labels == ["flat (this fit)", "half-cauchy", "half-normal", "no pooling"]
    assert "Normal(sample mean, standard error²)" in checked.to_html()


def test_bad_data_is_one_line(tmp_path) -> None:
    equal = pd.DataFrame({"variant": ["A"] * 3 + ["B"] * 3, "revenue": [2.0, 2.0, 2.0, 1.0, 2.0, 3.0]})
    with pytest.raises(abpool.InvalidDataError, match=r"^arm 'A': all 3 values are equal"):
        abpool.analyze_means(equal)
    with pytest.raises(abpool.InvalidArgumentError, match=r"^segments are not modelled for continuous metrics"):
        abpool.analyze_means(load_moments(revenue().assign(country="x"), segment="country"))
    with pytest.raises(abpool.InvalidArgumentError, match=r"^cap applies when unit rows are read"):
        abpool.analyze_means(load_moments(revenue()), cap=0.9)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "abpool", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_json_report_and_reproduce(tmp_path) -> None:
    path = tmp_path / "revenue.csv"
    revenue().to_csv(path, index=False)
    shown = run_cli("means", str(path), "--cap", "0.99", "--seed", "3", "--out", str(tmp_path / "run"))
    assert shown.returncode == 0, shown.stderr
    assert "mean revenue" in shown.stdout and "observed" in shown.stdout and " pp" not in shown.stdout
    payload = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert payload["model"] == "means" and payload["metric"]["name"] == "revenue"
    command = shlex.split(payload["provenance"]["reproduce"])
    assert command[:3] == ["abpool", "means", str(path)]
    again = run_cli(*command[1:], "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"] == payload["summary"]
    rendered = run_cli("report", str(tmp_path / "run"))
    assert rendered.returncode == 0, rendered.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--value", "nope"], "value column 'nope' (given by --value) not found"),
        (["--cap", "1.5"], "cap"),
        (["--prior", "uniform"], "prior must be one of flat, half-cauchy, half-normal"),
        (["--prior", "flat", "--prior-scale", "2"], "prior_scale applies to the half-cauchy and half-normal priors"),
        (["--threshold", "-1"], "threshold must be greater than 0"),
    ],
)
def test_cli_bad_input_exits_2_in_one_line(tmp_path, args, message) -> None:
    path = tmp_path / "revenue.csv"
    revenue().to_csv(path, index=False)
    found = run_cli("means", str(path), *args)
    assert found.returncode == 2
    assert found.stderr.count("\n") == 1 and message in found.stderr and "Traceback" not in found.stderr


@pytest.mark.slow
def test_exact_and_nuts_agree(seed) -> None:
    exact = abpool.analyze_means(STATS, prior="half-cauchy", seed=seed)
    nuts = abpool.analyze_means(STATS, prior="half-cauchy", engine="mcmc", draws=2_000, chains=4, seed=seed)
    # A rare divergent transition (about one run in five at this target) biases nothing visible; the chains must mix.
    assert nuts.diagnostics.max_rhat <= 1.01 and nuts.diagnostics.divergences <= 5, nuts.diagnostics.warnings
    ess = nuts.diagnostics.min_ess_bulk
    for arm in ("B", "C", "D"):
        p_exact, p_nuts = exact.prob_beats_control(arm), nuts.prob_beats_control(arm)
        error = math.sqrt(p_exact * (1 - p_exact) * (1 / ess + 1 / DRAWS))
        assert abs(p_exact - p_nuts) < Z * error + 1e-3
    a, b = exact.summary().set_index("arm"), nuts.summary().set_index("arm")
    error = np.sqrt(a["mean_sd"] ** 2 / DRAWS + b["mean_sd"] ** 2 / ess)
    assert (np.abs(a["posterior_mean"] - b["posterior_mean"]) < Z * error).all()


def test_the_documented_mean_vocabulary_is_the_code_s() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    # The section runs to the next heading of its level.
    part = text.split("## Means model")[1].split("\n## ")[0]
    assert dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", part, re.M)) == abpool.means.MEAN_VOCABULARY


@pytest.mark.slow
def test_simulation_based_calibration(seed) -> None:
    """Talts et al. (2018): the true parameters' ranks among posterior draws are uniform when the fit is right.

    The model's flat prior on mu cannot be sampled, so the simulations draw mu from Normal(0, 30²), far
    wider than the posterior of mu (sd about 0.7): the posterior under that prior and under the flat one
    differ by a share of 1e-3 of a standard deviation, far below what 600 simulations resolve.
    """
    rng = np.random.default_rng(seed)
    sigma = np.array([0.5, 1.0, 1.0, 2.0, 0.8])
    n = 100
    prior = HalfNormalPrior(scale=1.0)
    simulations, draws = 600, 1_000
    ranks = np.empty((simulations, sigma.size + 2), dtype=int)
    for k in range(simulations):
        mu = rng.normal(0.0, 30.0)
        tau = abs(rng.normal(0.0, 1.0))
        theta = rng.normal(mu, tau, sigma.size)
        ybar = rng.normal(theta, sigma)
        # Built directly (no file to read): the fit's own path from per-arm moments on.
        table = pd.DataFrame({"arm": list("ABCDE"), "n": n, "mean": ybar, "m2": sigma**2 * n * (n - 1.0)})
        moments = ArmMoments(table.assign(skewness=np.nan), (), "arm", "moments", "simulation", sigma.size)
        result = abpool.means.fit_means(moments, prior=prior, draws=draws, seed=int(rng.integers(2**31)))
        posterior = result.tree["posterior"]
        found = [posterior["mean"].values[0, :, j] for j in range(sigma.size)]
        found += [posterior["mu"].values[0], posterior["tau"].values[0]]
        truth = [*theta, mu, tau]
        ranks[k] = [int(np.sum(values < true)) for values, true in zip(found, truth, strict=True)]
    # Ranks run 0..1000: 1,001 values, eleven bins of 91 each.
    p_values = [scipy.stats.chisquare(np.bincount(r // 91, minlength=11)).pvalue for r in ranks.T]
    # Seven tests, each at 1e-5: a correct fit fails this test once in ~14,000 runs.
    assert min(p_values) > 1e-5, p_values


def test_analyze_picks_the_means_model_for_a_value_column(tmp_path) -> None:
    result = abpool.analyze(revenue(), value="revenue", cap=0.9, seed=2)
    assert result.model == "means" and result.cells.cap["quantile"] == 0.9
    with pytest.raises(abpool.InvalidArgumentError, match=r"^correlated does not apply to the means model"):
        abpool.analyze(revenue(), value="revenue", correlated=True)
    with pytest.raises(abpool.InvalidArgumentError, match=r"^segments of a continuous metric are not modelled yet"):
        abpool.analyze(revenue(), value="revenue", segment="variant")
    path = tmp_path / "revenue.csv"
    revenue().to_csv(path, index=False)
    found = run_cli("analyze", str(path), "--value", "revenue", "--cap", "0.9", "--seed", "2", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["summary"] == json.loads(result.to_json())["summary"]
