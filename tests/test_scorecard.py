"""Several metrics of one experiment: each with its model, guardrails that can hold the primary's decision."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import abpool
from abpool.data.metrics import is_binary
from abpool.scorecard import HOLD


def rows(n_per_arm: int = 3_000, *, slower: float = 0.0, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.repeat(["A", "B"], n_per_arm)
    treated = arm == "B"
    converted = rng.random(arm.size) < np.where(treated, 0.14, 0.10)
    return pd.DataFrame(
        {
            "variant": arm,
            "converted": converted,
            "orders": rng.poisson(np.where(converted, 1.5, 0.0)),
            "revenue": np.where(converted, rng.lognormal(3.0, 0.8, arm.size), 0.0),
            "latency_ms": rng.normal(200.0 + slower * treated, 30.0),
            "label": "x",
        }
    )


def test_each_metric_gets_its_model_and_the_same_numbers_as_alone(seed) -> None:
    data = rows()
    card = abpool.analyze_metrics(data, metrics=["converted", "revenue", "orders"], seed=seed)
    assert [r.model for r in card.results.values()] == ["variants", "means", "means"]
    alone = abpool.analyze_variants(data, outcome="converted", seed=seed)
    pd.testing.assert_frame_equal(card.results["converted"].summary(), alone.summary())
    alone = abpool.analyze_means(data, value="revenue", seed=seed)
    pd.testing.assert_frame_equal(card.results["revenue"].summary(), alone.summary())


def test_binary_columns_are_detected_by_their_values() -> None:
    data = rows()
    assert is_binary(data, "converted") and is_binary(data.assign(converted=data["converted"].astype(int)), "converted")
    assert not is_binary(data, "orders") and not is_binary(data, "revenue")
    with pytest.raises(abpool.InvalidDataError, match=r"^metric column 'label' of DataFrame is varchar, not numbers"):
        is_binary(data, "label")
    with pytest.raises(abpool.InvalidDataError, match=r"^metric column 'nope' not found in DataFrame"):
        is_binary(data, "nope")


def test_guardrail_probability_is_the_posterior_chance_of_harm(seed) -> None:
    card = abpool.analyze_metrics(
        rows(),
        metrics=["converted", "revenue", "latency_ms"],
        lower_is_better=["latency_ms"],
        margins={"revenue": 0.0, "latency_ms": 0.0},
        seed=seed,
    )
    table = card.guardrails().set_index("metric")
    # With no margin, harm is the other side of P(beats control): a higher value for lower-is-better.
    revenue, latency = card.results["revenue"], card.results["latency_ms"]
    assert table.loc["revenue", "prob_worse"] == pytest.approx(1 - revenue.prob_beats_control("B"), abs=1e-12)
    assert table.loc["latency_ms", "prob_worse"] == pytest.approx(latency.prob_beats_control("B"), abs=1e-12)
    wider = abpool.analyze_metrics(
        rows(), metrics=["converted", "revenue"], margins={"revenue": 0.5}, seed=seed
    ).guardrails()
    assert wider["prob_worse"].iloc[0] <= table.loc["revenue", "prob_worse"]


def test_a_real_harm_holds_the_launch_and_no_harm_does_not(seed) -> None:
    harmed = abpool.analyze_metrics(
        rows(slower=15.0),
        metrics=["converted", "latency_ms"],
        lower_is_better=["latency_ms"],
        margins={"latency_ms": 2.0},
        seed=seed,
    )
    assert harmed.results["converted"].recommendations()["decision"].iloc[0] == "ship"
    assert harmed.guardrails()["flagged"].all()
    decision = harmed.decision()
    assert decision["decision"] == HOLD and decision["blocking_guardrails"] == ["latency_ms"]
    assert harmed.sentences()[0].startswith("Hold: converted alone would ship B")
    fine = abpool.analyze_metrics(
        rows(20_000),
        metrics=["converted", "latency_ms"],
        lower_is_better=["latency_ms"],
        margins={"latency_ms": 3.0},
        seed=seed,
    )
    assert not fine.guardrails()["flagged"].any() and fine.decision()["decision"] == "ship"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics": []}, "metrics must be a list of one or more column names"),
        ({"metrics": ["revenue", "revenue"]}, "metrics must name each column once"),
        ({"metrics": ["revenue"], "primary": "converted"}, "primary must be one of the metrics revenue"),
        ({"metrics": ["revenue", "converted"], "margins": {"revenue": 1}}, "margins and lower_is_better name"),
        ({"metrics": ["revenue", "converted"], "margins": {"converted": -1}}, "the margin of converted must be"),
        ({"metrics": ["revenue", "converted"], "level": 1.5}, "level must be"),
    ],
)
def test_bad_options_are_one_line_errors(options, message) -> None:
    with pytest.raises(abpool.AbpoolError, match="^" + message):
        abpool.analyze_metrics(rows(200), seed=1, **options)


def test_report_and_json_hold_every_metric(tmp_path) -> None:
    card = abpool.analyze_metrics(rows(), metrics=["converted", "latency_ms"], lower_is_better=["latency_ms"], seed=2)
    card.save(tmp_path / "card")
    payload = json.loads((tmp_path / "card" / "summary.json").read_text())
    assert payload["primary"] == "converted" and set(payload["metrics"]) == {"converted", "latency_ms"}
    assert payload["metrics"]["latency_ms"]["model"] == "means"
    html = (tmp_path / "card" / "report.html").read_text()
    assert "Guardrails" in html and "latency_ms (guardrail): Estimates" in html and "lower-is-better" in html
    assert "latency_ms (guardrail): Recommendation" not in html


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abpool", *args], capture_output=True, text=True, timeout=300)


def test_cli(tmp_path) -> None:
    path = tmp_path / "users.csv"
    rows(1_000).to_csv(path, index=False)
    found = run_cli(
        "metrics",
        str(path),
        "--metric",
        "converted",
        "--metric",
        "latency_ms",
        "--lower-is-better",
        "latency_ms",
        "--margin",
        "latency_ms=1",
        "--seed",
        "1",
        "--json",
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["guardrails"][0]["metric"] == "latency_ms"
    bad = run_cli("metrics", str(path), "--metric", "converted", "--metric", "latency_ms", "--margin", "latency_ms")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--margin must be COLUMN=VALUE" in bad.stderr
    missing = run_cli("metrics", str(path), "--metric", "converted", "--metric", "nope")
    assert missing.returncode == 2 and "metric column 'nope' not found" in missing.stderr


def test_a_long_table_gives_the_same_scorecard_as_wide_columns(tmp_path, seed) -> None:
    wide = rows(1_000)
    long = wide.melt(id_vars="variant", value_vars=["converted", "latency_ms"], var_name="metric", value_name="value")
    long["value"] = long["value"].astype(float)
    path = tmp_path / "long.parquet"
    long.to_parquet(path)
    options = dict(lower_is_better=["latency_ms"], margins={"latency_ms": 1.0}, seed=seed)
    from_long = abpool.analyze_metrics(path, metric_column="metric", metrics=["converted", "latency_ms"], **options)
    from_wide = abpool.analyze_metrics(wide, metrics=["converted", "latency_ms"], **options)
    assert [r.model for r in from_long.results.values()] == ["variants", "means"]
    pd.testing.assert_frame_equal(from_long.guardrails(), from_wide.guardrails())
    long.loc[1_500, "value"] = float("nan")
    long.to_parquet(path)
    # Row numbers count rows of the whole table, not of the metric's own rows.
    with pytest.raises(abpool.InvalidDataError, match="row 1501 of"):
        abpool.analyze_metrics(path, metric_column="metric", metrics=["converted", "latency_ms"], seed=1)


@pytest.mark.parametrize("shape", ["wide", "long"])
def test_a_condition_keeps_one_experiments_rows_for_every_metric(tmp_path, seed, shape) -> None:
    wide = pd.concat(
        [rows(1_000, seed=4).assign(experiment="e1"), rows(800, slower=5.0, seed=5).assign(experiment="e2")]
    )
    table = wide
    options: dict = dict(metrics=["converted", "latency_ms"], lower_is_better=["latency_ms"], seed=seed)
    if shape == "long":
        table = wide.melt(id_vars=["experiment", "variant"], value_vars=["converted", "latency_ms"], var_name="metric")
        table["value"] = table["value"].astype(float)
        options["metric_column"] = "metric"
    path = tmp_path / "metrics.parquet"
    table.to_parquet(path)
    chosen = abpool.analyze_metrics(path, where="experiment = 'e2'", **options)
    alone = abpool.analyze_metrics(
        wide[wide.experiment == "e2"], **{k: v for k, v in options.items() if k != "metric_column"}
    )
    pd.testing.assert_frame_equal(chosen.guardrails(), alone.guardrails())
    for name, result in chosen.results.items():
        pd.testing.assert_frame_equal(result.summary(), alone.results[name].summary())
    command = shlex.split(chosen.results["converted"].reproduce_command())
    assert "experiment = 'e2'" in command[command.index("--where") + 1]
    empty = run_cli(
        "metrics",
        str(path),
        "--metric",
        "converted",
        "--where",
        "experiment = 'e3'",
        *(["--metric-column", "metric"] if shape == "long" else []),
    )
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1, empty.stderr


def test_the_documented_guardrail_columns_are_the_code_s() -> None:
    import re
    from pathlib import Path

    from abpool.scorecard import GUARDRAIL_COLUMNS

    text = (Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    # The section runs to the next heading of its level.
    part = text.split("## Several metrics")[1].split("\n## ")[0]
    assert dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", part, re.M)) == GUARDRAIL_COLUMNS


def test_a_long_tables_metrics_from_a_database_server_are_refused_in_one_line(tmp_path) -> None:
    from abpool.batch import analyze_batch
    from abpool.errors import InvalidArgumentError, InvalidDataError

    server = "postgresql://analyst@localhost:5999/shop"
    long = dict(metrics=["converted", "revenue"], metric_column="metric")
    with pytest.raises(InvalidArgumentError, match=r"^a long table's metrics \(metric_column\) are read from files"):
        abpool.analyze_metrics(server, table="events", **long)
    with pytest.raises(InvalidArgumentError, match=r"^a long table's metrics \(metric_column\) are read from files"):
        analyze_batch(server, table="events", out=tmp_path / "out", **long)
    # One column per metric is read in the server (tests/test_warehouse.py); none listens here.
    with pytest.raises(InvalidDataError, match=r"^cannot connect to postgresql://analyst@localhost:5999/shop"):
        abpool.analyze_metrics(server, table="events", metrics=["converted", "revenue"])
