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
from abpool.results import SUMMARY_COLUMNS


@pytest.fixture
def article(seed):
    return abpool.analyze_variants(article_variants(), seed=seed, draws=100_000)


def test_article_posterior_means(article) -> None:
    means = article.summary()["mean"].to_numpy()
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
    grand = small_result.grand_rate
    moved = (small["mean"] - small["observed_rate"]) / (grand - small["observed_rate"])
    assert moved > 0.6
    assert small["shrinkage"] > 0.5 > big["shrinkage"]
    # With 100 trials A keeps most of its own estimate.
    assert big["mean"] < 0.34


def test_summary_has_documented_columns_and_consistent_values(article) -> None:
    summary = article.summary()
    assert set(summary.columns) <= set(SUMMARY_COLUMNS)
    assert summary["prob_best"].sum() == pytest.approx(1.0)
    assert (summary["ci_low"] < summary["median"]).all() and (summary["median"] < summary["ci_high"]).all()
    assert np.isnan(summary.loc[0, "lift"])  # A is the control
    assert (summary["expected_loss"] >= 0).all()
    # The largest rate has the smallest expected loss.
    assert summary["expected_loss"].idxmin() == summary["mean"].idxmax()


def test_control_rope_and_level(seed) -> None:
    res = abpool.analyze_variants(article_variants(), control="C", rope=0.05, ci=0.8, seed=seed)
    summary = res.summary().set_index("variant")
    assert np.isnan(summary.loc["C", "lift"])
    assert summary.loc["B", "lift"] < 0 < summary.loc["D", "lift"]
    assert 0 < summary.loc["B", "prob_in_rope"] < 1
    wide = abpool.analyze_variants(article_variants(), control="C", ci=0.99, seed=seed).summary()
    assert (wide["ci_high"] - wide["ci_low"]).min() > (res.summary()["ci_high"] - res.summary()["ci_low"]).max()


def test_same_seed_same_result_and_seed_is_recorded() -> None:
    first = abpool.analyze_variants(article_variants(), seed=11)
    second = abpool.analyze_variants(article_variants(), seed=11)
    np.testing.assert_array_equal(first.draws, second.draws)
    chosen = abpool.analyze_variants(article_variants())
    again = abpool.analyze_variants(article_variants(), seed=chosen.seed)
    np.testing.assert_array_equal(chosen.draws, again.draws)


def test_json_contract(article) -> None:
    payload = json.loads(article.to_json())
    for key in (
        "model",
        "prior",
        "engine",
        "seed",
        "variants",
        "prob_greater",
        "prob_best",
        "expected_loss",
        "hyperparameters",
        "diagnostics",
    ):
        assert key in payload
    first = payload["variants"][0]
    for key in ("name", "trials", "successes", "observed_rate", "mean", "median", "ci_low", "ci_high"):
        assert key in first
    assert set(payload["prob_greater"]["B"]) == {"A", "C", "D"}
    for name in ("a", "b", "population_mean"):
        assert set(payload["hyperparameters"][name]) == {"median", "q25", "q75", "q025", "q975"}
    assert payload["prior"]["name"] == "bda"
    assert payload["diagnostics"]["converged"] is True


def test_inference_data_and_save(article, tmp_path) -> None:
    idata = article.idata
    assert idata.posterior["rate"].shape[-1] == 4
    assert idata.attrs["data_fingerprint"] == article.cells.fingerprint
    out = article.save(tmp_path / "run")
    loaded = az.from_netcdf(out / "posterior.nc")
    np.testing.assert_allclose(loaded.posterior["rate"].values, article.rates)
    assert loaded.attrs["seed"] == article.seed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == article.seed
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
    np.testing.assert_array_equal(a.draws, b.draws)


def test_many_variants(seed) -> None:
    rng = np.random.default_rng(seed)
    n = np.full(1_000, 2_000)
    y = rng.binomial(n, rng.beta(40, 960, size=n.size))
    res = abpool.analyze_variants(successes=y, trials=n, seed=seed)
    assert res.diagnostics.converged
    assert res.draws.shape == (4_000, 1_000)
    payload = res.to_dict()
    assert payload["prob_greater"] is None
    assert res.prob_greater(0, 1) + res.prob_greater(1, 0) == pytest.approx(1.0)
    # Partial pooling: estimates spread less than the raw rates.
    assert res.summary()["mean"].std() < (y / n).std()


def test_lognormal_prior_is_reported(seed) -> None:
    res = abpool.analyze_variants(article_variants(), prior="lognormal", seed=seed)
    assert res.to_dict()["prior"]["name"] == "lognormal"
    assert "Normal" in str(res.prior)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ci": 1.5}, "credible level"),
        ({"rope": -0.1}, "rope"),
        ({"engine": "gibbs"}, "unknown engine"),
        ({"prior": "flat"}, "unknown prior"),
        ({"draws": 0}, "draws"),
        ({"seed": -3}, "seed"),
        ({"control": "Z"}, "control"),
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
    res = abpool.analyze_variants(article_variants(), prior=abpool.LogNormalPrior(loc=60.0, scale=2.0), seed=seed)
    assert not res.diagnostics.converged
    assert "beyond the representable range" in res.diagnostics.warnings[0]
    assert res.to_dict()["diagnostics"]["converged"] is False
