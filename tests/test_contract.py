"""The result contract, checked on every registered result type (in the spirit of scikit-learn's common checks).

Each check runs on a variants fit with the exact engine, a variants fit with
MCMC, and a segments fit; a model registered later joins by adding a fixture
entry, and ``test_every_registered_model_is_checked`` fails until it does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

import abpool
from abpool.datasets import article_variants, make_dataframe
from abpool.report import render_report
from abpool.result import (
    MAX_PAIRWISE_ARMS,
    POPULATION_COLUMNS,
    SCHEMA_VERSION,
    VOCABULARY,
    model_entry,
    registered_models,
)

# One worker holds these, so the segments model is compiled once for them.
pytestmark = pytest.mark.xdist_group("contract")

KINDS = ("variants exact", "variants mcmc", "segments", "means")
SCHEMA_KEYS = {
    "schema_version",
    "model",
    "model_description",
    "settings",
    "prior",
    "data",
    "arms",
    "segments",
    "metric",
    "summary",
    "population",
    "prob_greater",
    "classical",
    "diagnostics",
    "provenance",
    "control_reason",
    "recommendation",
    "srm",
    "calibration",
    "sensitivity",
}
TIMESTAMP = re.compile(r'<time class="rendered-at"[^>]*>[^<]*</time>')


def revenue_rows() -> pd.DataFrame:
    """Revenue per user in three arms: many zeros and a long tail, as real revenue is."""
    rng = np.random.default_rng(11)
    arm = np.repeat(["A", "B", "C"], 300)
    bought = rng.random(arm.size) < 0.3
    return pd.DataFrame({"variant": arm, "revenue": np.where(bought, rng.lognormal(2.0, 0.8, arm.size), 0.0)})


def fit(kind: str, **options: Any) -> abpool.Result:
    if kind == "means":
        return abpool.analyze_means(revenue_rows(), seed=4, rope=0.2, **options)
    if kind == "variants exact":
        return abpool.analyze_variants(article_variants(), seed=4, rope=0.02, **options)
    if kind == "variants mcmc":
        return abpool.analyze_variants(
            article_variants(), seed=4, engine="mcmc", draws=400, tune=400, on_unconverged="ignore", **options
        )
    return abpool.analyze_segments(
        make_dataframe(100, [30, 50, 55, 60]),
        segment="country",
        arm="treated",
        outcome="success",
        control="0",
        seed=4,
        draws=500,
        on_unconverged="ignore",
        **options,
    )


@pytest.fixture(scope="module", params=KINDS)
def result(request: pytest.FixtureRequest) -> abpool.Result:
    return fit(request.param)


def test_every_registered_model_is_checked() -> None:
    assert set(registered_models()) == {kind.split()[0] for kind in KINDS}


def test_result_is_registered_under_its_model(result) -> None:
    assert isinstance(result, abpool.Result)
    assert model_entry(result.model).result_type is type(result)


def test_summary_speaks_the_vocabulary(result) -> None:
    summary = result.estimates()
    shared = [column for column in summary.columns if column in VOCABULARY]
    assert shared == [column for column in VOCABULARY if column in summary.columns]
    required = set(VOCABULARY) - {"segment", "prob_in_rope"}
    if result.metric.kind == "mean":
        # A mean has users, not trials and successes, and its own spread and standard error instead.
        required -= {"successes"}
        assert {"observed_sd", "std_error"} <= set(summary.columns)
    assert required <= set(summary.columns)
    public = result.summary()
    assert list(public.columns) == [type(result).column_names.get(column, column) for column in summary.columns]
    documented = {**VOCABULARY, **abpool.means.MEAN_VOCABULARY}
    assert set(public.columns) <= set(documented)
    assert ("segment" in summary.columns) == result.segmented
    assert ("prob_in_rope" in summary.columns) == (result.rope is not None)
    controls = summary[summary["is_control"]]
    assert (controls["arm"] == result.control).all()
    assert controls[["lift", "relative_lift", "prob_beats_control"]].isna().all().all()
    groups = summary.groupby("segment") if result.segmented else [(None, summary)]
    for _, group in groups:
        assert group["prob_best"].sum() == pytest.approx(1.0)
    for prefix in ("rate", "lift", "relative_lift"):
        rows = summary.dropna(subset=[prefix])
        assert (rows[f"{prefix}_ci_low"] <= rows[prefix]).all() and (rows[prefix] <= rows[f"{prefix}_ci_high"]).all()
    assert list(result.population().columns) == list(POPULATION_COLUMNS)


def test_every_answer_is_there(result) -> None:
    arm, other = result.treatments[0], result.control
    segment = result.segments[0] if result.segmented else None
    p = result.prob_greater(arm, other, segment)
    assert 0 <= p <= 1 and result.prob_beats_control(arm, segment) == p
    matrix = result.prob_greater_matrix(segment)
    assert matrix.loc[arm, other] == pytest.approx(p)
    assert result.prob_best().sum() == pytest.approx(max(1, len(result.segments)))
    assert (result.expected_loss() >= 0).all()
    assert result.rate_draws(segment).shape[1] == len(result.arms)
    assert {"arm_i", "arm_j", "p_value", "p_bonferroni", "p_holm", "p_bh", "prob_greater"} <= set(result.classical())
    assert result.pairwise() is not None and len(result.arms) <= MAX_PAIRWISE_ARMS
    assert result.sentences() and all(isinstance(s, str) for s in result.sentences())


def test_level_reaches_every_interval(result) -> None:
    # The same draws at two levels: every interval of the wider level contains the narrower one.
    narrow, wide = (dataclasses.replace(result, ci=level) for level in (0.5, 0.99))
    for table, keys in (
        (lambda r: r.estimates(), ("rate", "lift", "relative_lift")),
        (lambda r: r.population(), ("",)),
    ):
        low_n, low_w = table(narrow), table(wide)
        for prefix in keys:
            lo, hi = (f"{prefix}_ci_low", f"{prefix}_ci_high") if prefix else ("ci_low", "ci_high")
            rows = low_n[lo].notna()
            assert (low_w[lo][rows] < low_n[lo][rows]).all() and (low_n[hi][rows] < low_w[hi][rows]).all()
    assert "50% interval" in render_report(narrow) and "99% interval" in render_report(wide)


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_json_schema_and_plain_numbers(result) -> None:
    payload = result.to_dict()
    assert set(payload) == SCHEMA_KEYS | {f"grand_{result.metric.noun}"}
    assert payload["schema_version"] == SCHEMA_VERSION and payload["model"] == result.model
    assert _plain(payload), "to_dict() holds a non-JSON type (numpy scalar, tuple …)"
    assert json.loads(result.to_json()) == payload
    assert {"ci", "control", "rope", "seed"} <= set(payload["settings"])
    assert [row["arm"] for row in payload["summary"]][: len(result.arms)] == list(result.arms)
    assert {"name", "text", "parameters"} <= set(payload["prior"])
    assert {"abpool_version", "created", "data_fingerprint", "reproduce"} <= set(payload["provenance"])


def test_draws_carry_provenance(result) -> None:
    attrs = result.tree.attrs
    for key in ("created_at", "creation_library", "creation_library_version", "inference_library"):
        assert attrs[key], key
    assert attrs["model"] == result.model and attrs["seed"] == result.seed
    assert attrs["data_fingerprint"] == result.cells.fingerprint
    assert json.loads(attrs["settings"]) == json.loads(json.dumps(result.settings()))
    assert result.idata.attrs["data_fingerprint"] == result.cells.fingerprint


def test_save_load_report_identical(result, tmp_path) -> None:
    directory = result.save(tmp_path / "run")
    back = abpool.load(directory)
    assert type(back) is type(result)
    pd.testing.assert_frame_equal(back.summary(), result.summary())
    pd.testing.assert_frame_equal(back.population(), result.population())
    assert back.to_dict() == result.to_dict()
    saved = (directory / "report.html").read_text(encoding="utf-8")
    assert TIMESTAMP.sub("", render_report(back)) == TIMESTAMP.sub("", saved)


def test_repr_is_one_short_line(result) -> None:
    text = repr(result)
    assert "\n" not in text and len(text) < 300
    assert result.model in text and result.diagnostics.status in text and str(result.seed) in text
    assert "array(" not in text


def test_unconverged_fit_is_reported_everywhere(result) -> None:
    bad = dataclasses.replace(
        result, diagnostics=dataclasses.replace(result.diagnostics, converged=False, warnings=["R-hat 1.2 > 1.01"])
    )
    assert "NOT CONVERGED" in repr(bad)
    assert bad.to_dict()["diagnostics"]["converged"] is False
    assert 'class="alert"' in render_report(bad)
    with pytest.warns(abpool.ConvergenceWarning, match=r"R-hat 1\.2"):
        bad.handle_convergence("warn")
    with pytest.raises(abpool.ConvergenceError, match=r"R-hat 1\.2"):
        bad.handle_convergence("raise")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ci": 1.2}, r"^ci must be strictly between 0 and 1 \(e.g. 0.95\), got 1.2$"),
        ({"ci": "0.9"}, r"^ci must be a finite number \(e.g. 0.95\), got '0.9'$"),
        ({"rope": -0.01}, r"^rope must be greater than 0 \(a lift half-width such as 0.01\), got -0.01$"),
        ({"seed": -1}, r"^seed must be an integer of at least 0, got -1$"),
        ({"seed": 1.5}, r"^seed must be an integer of at least 0, got 1.5$"),
        ({"draws": 0}, r"^draws must be an integer of at least 1(000|00 per chain)\b.*, got 0$"),
        ({"on_unconverged": "shout"}, r"^on_unconverged must be one of warn, raise, ignore, got 'shout'$"),
    ],
)
@pytest.mark.parametrize("kind", ["variants exact", "segments"])
def test_bad_options_are_one_line_errors(kind, options, message) -> None:
    with pytest.raises(abpool.InvalidArgumentError, match=message):
        if kind == "variants exact":
            abpool.analyze_variants(article_variants(), **options)
        else:
            abpool.analyze_segments(make_dataframe(10, [3, 5, 5, 6]), segment="country", arm="treated", **options)


def test_numpy_scalars_are_numbers(seed) -> None:
    res = abpool.analyze_variants(article_variants(), seed=np.int64(seed), ci=np.float32(0.9), rope=np.float32(0.01))
    assert res.ci == pytest.approx(0.9) and res.rope == pytest.approx(0.01) and isinstance(res.seed, int)


@pytest.mark.parametrize("model", ["variants", "segments"])
def test_options_that_do_not_apply_are_refused(model) -> None:
    frame = make_dataframe(10, [3, 5, 5, 6])
    if model == "variants":
        with pytest.raises(abpool.InvalidArgumentError, match="correlated does not apply to the variants model"):
            abpool.analyze(frame, arm="treated", correlated=True)
    else:
        with pytest.raises(abpool.InvalidArgumentError, match="engine does not apply to the segments model"):
            abpool.analyze(frame, segment="country", arm="treated", engine="mcmc")
    assert np.all([name in model_entry(model).options for name in ("ci", "rope", "seed", "on_unconverged")])


def test_same_seed_same_numbers(result) -> None:
    kind = result.model if result.model in ("segments", "means") else f"variants {result.engine}"
    again = fit(kind)
    first, second = result.to_dict(), again.to_dict()
    first["provenance"].pop("created"), second["provenance"].pop("created")
    assert first == second


def test_the_documented_vocabulary_is_the_code_s() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    summary_part = text.split("## `summary()`")[1].split("## `population()`")[0]
    population_part = text.split("## `population()`")[1].split("## Methods")[0]
    for part, names in ((summary_part, VOCABULARY), (population_part, POPULATION_COLUMNS)):
        documented = re.findall(r"^\| `(\w+)` \| (.+) \|$", part, re.M)
        assert dict(documented) == names


def test_every_model_checks_its_prior_sensitivity(result, tmp_path) -> None:
    """One entry of the model's own panel, refitted with the result's settings, carried into every output."""
    panel = type(result).prior_panel()
    other = next(entry for entry in panel if entry.prior != result.prior)
    checked = result.with_sensitivity([other.prior])
    found = checked.prior_sensitivity
    assert [entry["label"] for entry in found["panel"]][1:] == [other.label, "no pooling"]
    assert checked.to_dict()["sensitivity"] == found
    assert len(found["decisions"]) == 3 * max(1, len(result.segments))
    assert "Would a different prior change the decision?" in checked.to_html()


def test_records_are_the_tables_rows(result) -> None:
    # The JSON and a batch's rows read the answers as records, built without DataFrames: they must be the rows
    # of the public tables, value for value (NaN for NaN), under the same column names.
    from abpool.io import frame_records, to_jsonable

    assert to_jsonable(result.summary_records()) == to_jsonable(frame_records(result.summary()))
    assert to_jsonable(result.recommendation_records()) == to_jsonable(frame_records(result.recommendations()))
    payload = result.to_dict()
    assert payload["population"] == to_jsonable(frame_records(result.population()))
    assert payload["srm"]["tests"] == to_jsonable(frame_records(result.srm()))
    pairwise = result.pairwise()
    assert payload["prob_greater"] == (None if pairwise is None else to_jsonable(frame_records(pairwise)))
    if payload["classical"] is not None:
        assert payload["classical"] == to_jsonable(frame_records(result.classical()))
