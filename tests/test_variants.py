"""The variants model end to end through the Python API."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

import abpool
from abpool.datasets import article_variants
from abpool.errors import InvalidArgumentError
from abpool.result import VOCABULARY


@pytest.fixture
def article(seed):
    return abpool.analyze_variants(article_variants(), seed=seed, draws=100_000)


def test_article_posterior_means(article) -> None:
    means = article.summary()["rate_mean"].to_numpy()
    np.testing.assert_allclose(means, [0.3229, 0.4983, 0.5423, 0.5862], atol=0.003)


def test_article_pairwise_probabilities(article) -> None:
    # 100,000 independent draws: Monte Carlo sd of a probability ≤ 0.0016.
    assert abs(article.prob_greater("B", "C") - 0.251) < 0.01
    assert article.prob_greater("D", "A") > 0.99
    assert article.prob_greater("B", "C") + article.prob_greater("C", "B") == pytest.approx(1.0)


def test_scenario_b_shrinks_a_most_of_the_way_to_the_grand_rate(seed) -> None:
    big = abpool.analyze_variants(article_variants(100), seed=seed).summary().iloc[0]
    small_result = abpool.analyze_variants(article_variants(10), seed=seed)
    small = small_result.summary().iloc[0]
    grand = small_result.grand_rate()
    moved = (small["rate"] - small["observed_rate"]) / (grand - small["observed_rate"])
    assert moved > 0.6
    assert small["pooling"] > 0.5 > big["pooling"]
    # With 100 trials A keeps most of its own estimate.
    assert big["rate"] < 0.34


def test_summary_has_documented_columns_and_consistent_values(article) -> None:
    summary = article.summary()
    assert list(summary.columns) == [c for c in VOCABULARY if c in summary.columns]
    assert set(summary.columns) == set(VOCABULARY) - {"segment", "prob_in_rope"}
    assert summary["prob_best"].sum() == pytest.approx(1.0)
    assert (summary["rate_ci_low"] < summary["rate"]).all() and (summary["rate"] < summary["rate_ci_high"]).all()
    assert np.isnan(summary.loc[0, "lift"]) and summary.loc[0, "is_control"]  # A is the control
    assert (summary["expected_loss"] >= 0).all()
    # The largest rate has the smallest expected loss.
    assert summary["expected_loss"].idxmin() == summary["rate"].idxmax()


def test_control_rope_and_level(seed) -> None:
    res = abpool.analyze_variants(article_variants(), control="C", rope=0.05, ci=0.8, seed=seed)
    summary = res.summary().set_index("arm")
    assert np.isnan(summary.loc["C", "lift"])
    assert summary.loc["B", "lift"] < 0 < summary.loc["D", "lift"]
    assert 0 < summary.loc["B", "prob_in_rope"] < 1
    wide = abpool.analyze_variants(article_variants(), control="C", ci=0.99, seed=seed).summary()
    narrow = res.summary()
    assert (wide["rate_ci_high"] - wide["rate_ci_low"]).min() > (narrow["rate_ci_high"] - narrow["rate_ci_low"]).max()
    # The level reaches the population intervals too.
    wide_population = abpool.analyze_variants(article_variants(), ci=0.99, seed=seed).population()
    narrow_population = res.population()
    assert (
        (wide_population["ci_high"] - wide_population["ci_low"])
        > (narrow_population["ci_high"] - narrow_population["ci_low"])
    ).all()


def test_same_seed_same_result_and_seed_is_recorded() -> None:
    first = abpool.analyze_variants(article_variants(), seed=11)
    second = abpool.analyze_variants(article_variants(), seed=11)
    np.testing.assert_array_equal(first.rate_draws(), second.rate_draws())
    chosen = abpool.analyze_variants(article_variants())
    again = abpool.analyze_variants(article_variants(), seed=chosen.seed)
    np.testing.assert_array_equal(chosen.rate_draws(), again.rate_draws())


def test_json_contract(article) -> None:
    payload = json.loads(article.to_json())
    assert payload["schema_version"] == 1 and payload["model"] == "variants"
    for key in ("settings", "prior", "data", "summary", "population", "prob_greater", "classical", "diagnostics"):
        assert key in payload
    assert payload["settings"]["engine"] == "exact" and payload["settings"]["seed"] == article.seed
    first = payload["summary"][0]
    assert set(first) == set(VOCABULARY) - {"segment", "prob_in_rope"}
    pairs = {(p["arm_i"], p["arm_j"]) for p in payload["prob_greater"]}
    assert {("B", "A"), ("B", "C"), ("B", "D")} <= pairs and len(pairs) == 12
    assert {row["quantity"] for row in payload["population"]} == {"population_mean", "concentration", "a", "b"}
    assert set(payload["population"][0]) == set(abpool.POPULATION_COLUMNS)
    assert payload["prior"]["name"] == "bda"
    assert payload["diagnostics"]["converged"] is True
    assert payload["provenance"]["data_fingerprint"] == article.cells.fingerprint


def test_inference_data_and_save(article, tmp_path) -> None:
    idata = article.idata
    assert isinstance(idata, az.InferenceData)
    assert idata.posterior["rate"].shape[-1] == 4
    for key in ("created_at", "creation_library", "creation_library_version", "inference_library", "seed", "prior"):
        assert key in idata.attrs
    assert idata.attrs["data_fingerprint"] == article.cells.fingerprint
    out = article.save(tmp_path / "run")
    loaded = az.from_netcdf(out / "posterior.nc")
    np.testing.assert_allclose(loaded.posterior["rate"].values.reshape(-1, 4), article.rate_draws())
    assert loaded.attrs["seed"] == article.seed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["seed"] == article.seed
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_unit_rows_and_cells_give_the_same_answer(seed) -> None:
    cells = article_variants()
    units = pd.DataFrame(
        {
            "variant": np.repeat(cells["variant"], cells["trials"]),
            "converted": np.concatenate(
                [[1] * s + [0] * (t - s) for s, t in zip(cells["successes"], cells["trials"], strict=True)]
            ),
        }
    )
    a = abpool.analyze_variants(cells, seed=seed)
    b = abpool.analyze_variants(units, seed=seed)
    assert a.cells.fingerprint == b.cells.fingerprint
    np.testing.assert_array_equal(a.rate_draws(), b.rate_draws())


def test_many_variants(seed) -> None:
    rng = np.random.default_rng(seed)
    n = np.full(1_000, 2_000)
    y = rng.binomial(n, rng.beta(40, 960, size=n.size))
    res = abpool.analyze_variants(successes=y, trials=n, seed=seed)
    assert res.diagnostics.converged
    assert res.rate_draws().shape == (4_000, 1_000)
    payload = res.to_dict()
    assert payload["prob_greater"] is None and payload["classical"] is None
    assert res.prob_greater(0, 1) + res.prob_greater(1, 0) == pytest.approx(1.0)
    # Partial pooling: estimates spread less than the raw rates.
    assert res.summary()["rate"].std() < (y / n).std()


def test_lognormal_prior_is_reported(seed) -> None:
    res = abpool.analyze_variants(article_variants(), prior="lognormal", seed=seed)
    assert res.to_dict()["prior"]["name"] == "lognormal"
    assert "Normal" in str(res.prior)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ci": 1.5}, "ci must be strictly between 0 and 1"),
        ({"rope": -0.1}, "rope must be greater than 0"),
        ({"engine": "gibbs"}, "engine must be one of exact, mcmc, got 'gibbs'"),
        ({"prior": "flat"}, "prior must be one of bda, lognormal"),
        ({"draws": 0}, "draws must be an integer of at least 1000"),
        ({"seed": -3}, "seed must be an integer of at least 0"),
        ({"control": "Z"}, "control arm 'Z'"),
        ({"on_unconverged": "shout"}, "on_unconverged must be one of"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message) -> None:
    with pytest.raises(abpool.AbpoolError, match=message):
        abpool.analyze_variants(article_variants(), **kwargs)


def test_count_arrays_must_match() -> None:
    with pytest.raises(InvalidArgumentError, match="successes has 2 values but trials has 3"):
        abpool.analyze_variants(successes=[1, 2], trials=[10, 10, 10])


def test_analyze_dispatches_to_variants(seed) -> None:
    res = abpool.analyze(article_variants(), seed=seed)
    assert isinstance(res, abpool.VariantsResult)


def test_edge_mass_marks_the_fit_unconverged(seed) -> None:
    prior = abpool.LogNormalPrior(loc=60.0, scale=2.0)
    with pytest.warns(abpool.ConvergenceWarning, match="did not converge") as caught:
        res = abpool.analyze_variants(article_variants(), prior=prior, seed=seed)
    # The warning points at the caller's line, not into abpool.
    assert caught[0].filename == __file__
    assert not res.diagnostics.converged
    assert "beyond the representable range" in res.diagnostics.warnings[0]
    assert res.to_dict()["diagnostics"]["converged"] is False
    with pytest.raises(abpool.ConvergenceError, match="beyond the representable range"):
        abpool.analyze_variants(article_variants(), prior=prior, seed=seed, on_unconverged="raise")
