"""What a team acts on: the recommendation, the sample-ratio-mismatch guardrail, the control, the calibration."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

import abpool
from abpool import decisions
from abpool.calibration import VariantsDesign, run_study

ABPOOL = [sys.executable, "-m", "abpool"]


def run(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


# ------------------------------------------------------------------ sample ratio mismatch
@pytest.mark.parametrize(
    ("counts", "split"), [([50_000, 45_000], [1, 1]), ([333, 340, 327], [1, 1, 1]), ([700, 300], [70, 30])]
)
def test_srm_statistic_is_pearsons_chi_square(counts, split) -> None:
    counts, split = np.array(counts, float), np.array(split, float)
    expected = counts.sum() * split / split.sum()
    statistic = float(((counts - expected) ** 2 / expected).sum())
    got_statistic, got_p = decisions.srm_test(counts, split)
    assert got_statistic == pytest.approx(statistic, rel=1e-12)
    assert got_p == pytest.approx(chi2.sf(statistic, len(counts) - 1), rel=1e-9)


def test_srm_flags_the_issue_s_example_and_not_a_fair_split() -> None:
    skewed = abpool.analyze_variants(successes=[5_000, 4_500], trials=[50_000, 45_000], seed=1)
    assert skewed.srm_flagged() and "Sample ratio mismatch overall" in skewed.srm_sentences()[0]
    fair = abpool.analyze_variants(successes=[5_000, 5_000], trials=[50_000, 50_100], seed=1)
    assert not fair.srm_flagged() and fair.srm_sentences() == []
    intended = abpool.analyze_variants(successes=[5_000, 4_500], trials=[50_000, 45_000], split=[10, 9], seed=1)
    assert not intended.srm_flagged()
    payload = skewed.to_dict()["srm"]
    assert payload["flagged"] and payload["tests"][0]["expected_shares"] == {"A": 0.5, "B": 0.5}


def test_srm_is_checked_per_segment_and_overall() -> None:
    frame = pd.DataFrame(
        {
            "country": ["CA", "CA", "US", "US"],
            "arm": ["control", "treatment", "control", "treatment"],
            "trials": [5_000, 4_000, 4_000, 5_000],  # balanced overall, skewed within each country
            "successes": [500, 400, 400, 500],
        }
    )
    from abpool.segments.result import SegmentsResult

    result = abpool.analyze_segments(frame, segment="country", seed=1, draws=200, on_unconverged="ignore")
    assert isinstance(result, SegmentsResult)
    table = result.srm()
    assert table["segment"].tolist() == [None, "CA", "US"]
    assert table["flagged"].tolist() == [False, True, True]


def test_strict_turns_a_flagged_srm_into_exit_1(tmp_path) -> None:
    path = tmp_path / "skewed.csv"
    path.write_text("variant,trials,successes\nA,50000,5000\nB,45000,4500\n")
    relaxed = run("variants", path, "--seed", "1")
    assert relaxed.returncode == 0 and "Sample ratio mismatch" in relaxed.stdout
    assert relaxed.stdout.index("Sample ratio mismatch") < relaxed.stdout.index("Estimates")  # the warning first
    strict = run("variants", path, "--seed", "1", "--strict")
    assert strict.returncode == 1
    assert strict.stderr.strip().splitlines() == [strict.stderr.strip().splitlines()[-1]]
    assert "sample ratio mismatch" in strict.stderr
    assert run("variants", path, "--seed", "1", "--split", "A=10,B=9", "--strict").returncode == 0


# ------------------------------------------------------------------ the recommendation
def _posterior(rng: np.random.Generator, means: list[float], sd: float, n: int = 20_000) -> np.ndarray:
    return np.column_stack([rng.normal(m, sd, n) for m in means])


def test_the_rule_ships_only_below_the_threshold(rng) -> None:
    clear = _posterior(rng, [0.10, 0.12], 0.002)
    assert decisions.recommend(clear, 0, threshold=0.001) == ("ship", 1)
    # The same winner with a wide posterior: its expected loss is above the threshold.
    vague = _posterior(rng, [0.10, 0.105], 0.01)
    assert decisions.recommend(vague, 0, threshold=0.001) == ("keep running", None)
    # Raising the threshold of caring makes the same posterior shippable.
    assert decisions.recommend(vague, 0, threshold=0.01) == ("ship", 1)


def test_the_rule_says_no_meaningful_difference_and_keeps_the_control(rng) -> None:
    same = _posterior(rng, [0.10, 0.1001, 0.0999], 0.0002)
    assert decisions.recommend(same, 0, threshold=0.001, rope=0.002) == ("no meaningful difference", 0)
    worse = _posterior(rng, [0.12, 0.10], 0.002)
    assert decisions.recommend(worse, 0, threshold=0.001) == ("ship", 0)  # keep the control


def test_expected_loss_matches_its_closed_form(rng) -> None:
    # Two independent normals: E[max(X - Y, 0)] = d Φ(d/s) + s φ(d/s) with d = μx - μy, s = sqrt(σx² + σy²).
    from scipy.stats import norm

    draws = _posterior(rng, [0.11, 0.10], 0.01, n=400_000)
    d, s = 0.01, np.sqrt(2) * 0.01
    closed = d * norm.cdf(d / s) + s * norm.pdf(d / s)
    se = np.std(np.maximum(draws[:, 0] - draws[:, 1], 0)) / np.sqrt(draws.shape[0])
    assert abs(decisions.expected_loss(draws)[1] - closed) < 5 * se


def test_recommendation_in_every_output(tmp_path) -> None:
    path = tmp_path / "clear.csv"
    path.write_text("variant,trials,successes\nA,20000,2000\nB,20000,2600\n")
    proc = run("variants", path, "--seed", "2", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[1]
    assert first.startswith("Ship B: choosing it gives up")
    assert "Decision rule: ship the arm whose expected loss is below the threshold of caring, 0.10 pp" in " ".join(
        proc.stdout.split()
    )
    payload = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert payload["recommendation"]["decisions"][0]["decision"] == "ship"
    assert payload["recommendation"]["decisions"][0]["arm"] == "B"
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert html.index("Ship B: choosing it") < html.index('<section id="question">')


def test_tiny_samples_come_with_a_caveat() -> None:
    result = abpool.analyze_variants(successes=[1, 4], trials=[5, 5], seed=1)
    (sentence,) = result.recommendation_sentences()
    assert "Caution: A, B have fewer than 30 users" in sentence


def test_segments_get_a_recommendation_each() -> None:
    frame = abpool.datasets.make_dataframe(100, [30, 50, 55, 60])
    result = abpool.analyze_segments(frame, segment="country", arm="treated", seed=1, threshold=0.02)
    table = result.recommendations()
    assert table["segment"].tolist() == ["Canada", "China"]
    assert set(table["decision"]) <= {"ship", "keep running", "no meaningful difference"}
    assert [s.split(":")[0] for s in result.recommendation_sentences()] == ["Canada", "China"]


# ------------------------------------------------------------------ the control
def test_the_control_never_depends_on_row_order(tmp_path) -> None:
    rng = np.random.default_rng(0)
    units = pd.DataFrame({"variant": np.repeat(["control", "B", "C"], 200), "converted": rng.random(600) < 0.2})
    shuffled = units.iloc[rng.permutation(len(units))]
    path = tmp_path / "users.parquet"
    shuffled.to_parquet(path)
    result = abpool.analyze_variants(path, seed=1)
    assert result.control == "control" and "conventional name" in result.control_reason
    unnamed = units.replace({"variant": {"control": "X"}})
    first, second = (abpool.analyze_variants(frame, seed=1).control for frame in (unnamed, unnamed.iloc[::-1]))
    assert first == second == "B"
    proc = run("variants", path, "--seed", "1")
    assert "Control: control (named 'control', the conventional name of a control)." in proc.stdout


# ------------------------------------------------------------------ this design's own calibration
@pytest.mark.slow
def test_calibration_agrees_with_the_calibration_study(seed) -> None:
    """Two arms of 100 users at 50%: the study's two-sided A/A error is twice the one-sided false-winner rate."""
    experiments = 1_000
    result = abpool.analyze_variants(successes=[50, 50], trials=[100, 100], seed=seed)
    own = result.calibrate(experiments=experiments, seed=seed).calibration
    study = run_study(VariantsDesign(arms=2, trials=100, base_rate=0.5), experiments=experiments, seed=seed, workers=1)
    fwer = study.metrics()[0]["family_wise_error"]
    one_sided = own["false_winner_rate"]
    # Both are Monte Carlo proportions of ~1,000 experiments: 4.5 standard errors of their difference.
    se = np.sqrt(fwer * (1 - fwer) / experiments + 4 * one_sided * (1 - one_sided) / experiments)
    assert abs(fwer - 2 * one_sided) < 4.5 * se + 1e-3, (fwer, one_sided)
    assert own["calibrated_threshold_ci"][0] <= own["calibrated_threshold"] <= own["calibrated_threshold_ci"][1]


def test_calibration_reaches_terminal_json_and_report(tmp_path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text("variant,trials,successes\nA,100,30\nB,100,50\nC,100,55\nD,100,60\n")
    proc = run("variants", path, "--seed", "1", "--calibrate", "--experiments", "40", "--json")
    assert proc.returncode == 0, proc.stderr
    calibration = json.loads(proc.stdout)["calibration"]
    assert calibration["experiments"] == 40 and 0 <= calibration["false_winner_rate"] <= 1
    terminal = run("variants", path, "--seed", "1", "--calibrate", "--experiments", "40")
    assert terminal.returncode == 0 and "This design's A/A calibration" in terminal.stdout
    assert "false-winner rate at P(beats control) ≥ 95%" in terminal.stdout
    assert "--experiments sets the size of --calibrate" in run("variants", path, "--experiments", "40").stderr


# ------------------------------------------------------------------ output that fits
@pytest.mark.parametrize("columns", ["80", "100"])
@pytest.mark.parametrize("model", ["variants", "segments"])
def test_nothing_is_cut_at_80_or_100_columns(tmp_path, columns, model) -> None:
    import os

    env = {**os.environ, "COLUMNS": columns}
    if model == "variants":
        names = [f"variant-{k:02d}-long-name" for k in range(12)]
        frame = pd.DataFrame({"variant": names, "trials": [1000] * 12, "successes": list(range(100, 112))})
        path = tmp_path / "wide.csv"
        frame.to_csv(path, index=False)
        proc = run("variants", path, "--seed", "1", "--rope", "0.01", "--classical", env=env)
    else:
        path = tmp_path / "users.csv"
        abpool.datasets.make_dataframe(100, [30, 50, 55, 60]).to_csv(path, index=False)
        proc = run("segments", path, "--segment", "country", "--arm", "treated", "--seed", "1", "--classical", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= int(columns)
    assert "-0.0 pp" not in proc.stdout and "-0.000" not in proc.stdout and "e+00" not in proc.stdout


@pytest.mark.parametrize("command", ["variants", "segments", "analyze", "report", "demo", "simulate"])
def test_help_is_clean(command) -> None:
    text = run(command, "--help").stdout
    for bad in ("{data}", "<list[str]>", "<str>", "<int>", "<float>", "<path>"):
        assert bad not in text, bad
    for line in text.splitlines():
        assert line.count("[default:") <= 1, line
