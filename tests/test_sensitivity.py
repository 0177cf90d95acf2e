"""Prior sensitivity: the panel, the refits, the verdict both ways, and bad panel entries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import abpool
from abpool.errors import InvalidArgumentError
from abpool.panel import PanelEntry
from abpool.sensitivity import PRIOR_DEPENDENT, ROBUST, Sensitivity
from abpool.variants.priors import LogNormalPrior

ABPOOL = [sys.executable, "-m", "abpool"]
ARTICLE = {"successes": [30, 50, 55, 60], "trials": [100] * 4}


def run(*args: str, columns: int = 160) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def small_arm(successes: int, seed: int, threshold: float) -> abpool.VariantsResult:
    """Two large arms at 5% and a small arm C (200 users) that looks better."""
    return abpool.analyze_variants(
        successes=[1000, 1000, successes], trials=[20_000, 20_000, 200], seed=seed, threshold=threshold
    )


def test_article_variants_panel_is_robust(seed) -> None:
    found = abpool.analyze_variants(**ARTICLE, seed=seed).sensitivity()
    assert found.labels == ["bda (this fit)", "lognormal", "weaker pooling", "stronger pooling", "no pooling"]
    assert found.counted == found.labels[:-1]
    verdicts = found.verdicts()
    assert verdicts["verdict"].tolist() == [ROBUST] and verdicts["decision"].tolist() == ["keep running"]
    # Pooling strength moves the estimates the way it should: stronger pooling pulls D's lift toward zero.
    d = found.answers[found.answers["arm"] == "D"].set_index("prior")["lift"]
    assert d["stronger pooling"] < d["bda (this fit)"] < d["no pooling"]
    payload = json.loads(json.dumps(found.to_dict()))
    assert payload["robust"] is True and [e["counted"] for e in payload["panel"]] == [True] * 4 + [False]
    assert payload["sentences"][-1].startswith("No pooling is shown as the limiting reference")


def test_a_small_arms_win_that_stronger_pooling_undoes_is_prior_dependent(seed) -> None:
    # Expected loss of C: about 0.0005 under bda, 0.00085 under stronger pooling (Monte Carlo error ~2e-5),
    # so with a threshold of 0.0007 bda ships C and stronger pooling keeps running, for any seed.
    found = small_arm(16, seed, threshold=0.0007).sensitivity()
    (row,) = found.verdicts().itertuples(index=False)
    assert row.verdict == PRIOR_DEPENDENT and row.decision == "ship C"
    assert "stronger pooling" in row.changed_by and "weaker pooling" not in row.changed_by
    sentence = found.sentences()[0]
    assert sentence.startswith("prior-dependent — ") and "stronger pooling gives keep running" in sentence
    assert "collect more data" in sentence


def test_a_clear_win_is_robust(seed) -> None:
    # Expected loss of C at most 0.0003 under every prior, against a threshold of 0.001.
    found = small_arm(20, seed, threshold=0.001).sensitivity()
    assert found.robust and found.verdicts()["decision"].tolist() == ["ship C"]


def test_the_reference_is_shown_but_not_counted() -> None:
    entries = [
        PanelEntry("bda (this fit)", None, "own"),
        PanelEntry("lognormal", None, "other"),
        PanelEntry("no pooling", None, "reference", reference=True),
    ]
    choices = pd.DataFrame(
        {
            "prior": ["bda (this fit)", "lognormal", "no pooling"] * 2,
            "segment": ["x"] * 3 + ["y"] * 3,
            "decision": ["keep running", "keep running", "ship", "ship", "keep running", "ship"],
            "arm": [None, None, "B", "B", None, "B"],
        }
    )
    found = Sensitivity(entries, pd.DataFrame(), choices, control="A", threshold=0.001, segmented=True)
    verdicts = found.verdicts().set_index("segment")
    assert verdicts.loc["x", "verdict"] == ROBUST  # only the reference disagrees
    assert verdicts.loc["y", "verdict"] == PRIOR_DEPENDENT and verdicts.loc["y", "changed_by"] == ["lognormal"]
    assert found.sentences()[0].startswith("y: prior-dependent — lognormal gives keep running, where")


def test_panel_fits_equal_single_fits_variants(seed) -> None:
    res = abpool.analyze_variants(**ARTICLE, seed=seed)
    found = res.sensitivity(panel=["lognormal", "lognormal:loc=4,scale=1"])
    assert found.labels == ["bda (this fit)", "lognormal", "lognormal:loc=4,scale=1", "no pooling"]
    for label, prior in (("lognormal", "lognormal"), ("lognormal:loc=4,scale=1", LogNormalPrior(loc=4, scale=1))):
        single = abpool.analyze_variants(**ARTICLE, seed=seed, prior=prior).summary()
        mine = found.answers[found.answers["prior"] == label]
        np.testing.assert_array_equal(mine["rate"].to_numpy(float), single["rate"].to_numpy(float))
        np.testing.assert_array_equal(
            mine["prob_beats_control"].to_numpy(float), single["prob_beats_control"].to_numpy(float)
        )
    own = found.answers[found.answers["prior"] == "bda (this fit)"]
    np.testing.assert_array_equal(own["prob_best"].to_numpy(float), res.summary()["prob_best"].to_numpy(float))


def test_panel_fits_equal_single_fits_segments() -> None:
    from abpool.datasets import make_dataframe

    frame = make_dataframe(100, [30, 50, 55, 60])
    options = {"segment": "country", "arm": "treated", "outcome": "success", "control": "0", "seed": 3, "draws": 500}
    res = abpool.analyze_segments(frame, **options)
    found = res.sensitivity(panel=["conservative", "article:scale=2"])
    assert found.labels == ["article (this fit)", "conservative", "article:scale=2", "no pooling"]
    for label, prior, scale in (("conservative", "conservative", None), ("article:scale=2", "article", 2.0)):
        single = abpool.analyze_segments(frame, **options, prior=prior, prior_scale=scale).summary()
        mine = found.answers[found.answers["prior"] == label]
        np.testing.assert_array_equal(mine["rate"].to_numpy(float), single["rate"].to_numpy(float))
    assert set(found.verdicts()["segment"]) == {"Canada", "China"}


def test_no_pooling_is_each_cell_on_its_own(seed) -> None:
    found = abpool.analyze_variants(**ARTICLE, seed=seed, draws=40_000).sensitivity(panel=["none"])
    rates = found.answers[found.answers["prior"] == "no pooling"]["rate"].to_numpy(float)
    for k, (y, n) in enumerate(zip(ARTICLE["successes"], ARTICLE["trials"], strict=True)):
        truth = stats.beta(1 + y, 1 + n - y)
        median = truth.median()
        # Standard error of a sample median: 1 / (2 f(m) sqrt(N)); 5 of them.
        tolerance = 5 / (2 * truth.pdf(median) * np.sqrt(40_000))
        assert abs(rates[k] - median) < tolerance


@pytest.mark.parametrize(
    ("panel", "message"),
    [
        (["flat"], "panel entry must name one of bda, lognormal, weaker, stronger"),
        (["lognormal:scale=-1"], "panel entry 'lognormal:scale=-1': lognormal prior scale must be greater than 0"),
        (["lognormal:width=2"], "sets width, which the prior does not have"),
        (["bda:scale=2"], "sets scale, which the prior does not have"),
        (["lognormal:scale"], "panel entry must be NAME or NAME:key=value"),
        ("lognormal", "panel must be a non-empty list"),
        ([], "panel must be a non-empty list"),
        ([3.0], "panel entry must be a variants prior"),
    ],
)
def test_bad_panel_entries_are_refused(panel, message) -> None:
    res = abpool.analyze_variants(**ARTICLE, seed=1, draws=2_000)
    with pytest.raises(InvalidArgumentError) as caught:
        res.sensitivity(panel=panel)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_segments_panel_entries_are_checked() -> None:
    from abpool.segments.priors import segments_panel_entry

    assert segments_panel_entry("doubled").prior.scale == 2.0
    with pytest.raises(InvalidArgumentError, match=r"prior scale must be greater than 0, got -0\.5"):
        segments_panel_entry("article:scale=-0.5")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sensitivity", "--panel", "wide"], "panel entry must name one of bda, lognormal"),
        (["--sensitivity", "--panel", "lognormal:scale=-2"], "lognormal prior scale must be greater than 0"),
        (["--panel", "lognormal"], "--panel sets the priors of --sensitivity"),
    ],
)
def test_cli_bad_panel_exits_2_with_one_line(article_cells_csv, args, message) -> None:
    proc = run("variants", article_cells_csv, *args)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("abpool: error: ") and message in line


def test_cli_table_fits_100_columns_and_json_carries_the_panel(article_cells_csv) -> None:
    proc = run("variants", article_cells_csv, "--sensitivity", "--seed", "2", columns=100)
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout[proc.stdout.index("Would a different prior change the decision?") :]
    assert all(len(line) <= 100 for line in section.splitlines()) and "…" not in section
    assert "robust — every reasonable prior" in section
    assert "(1 of 2)" not in section  # one piece at 100 columns
    proc = run("variants", article_cells_csv, "--sensitivity", "--json", "--seed", "2")
    payload = json.loads(proc.stdout)["sensitivity"]
    assert [entry["label"] for entry in payload["panel"]][-1] == "no pooling"
    assert payload["verdicts"][0]["verdict"] == "robust"


def test_report_and_saved_run_keep_the_check(tmp_path) -> None:
    res = abpool.analyze_variants(**ARTICLE, seed=4).with_sensitivity(["stronger"])
    html = res.to_html()
    assert "Would a different prior change the decision?" in html and "Lifts under each prior" in html
    res.save(tmp_path / "run")
    back = abpool.load(tmp_path / "run")
    assert back.prior_sensitivity == res.prior_sensitivity
    plain = abpool.analyze_variants(**ARTICLE, seed=4).to_html()
    assert "rerun with --sensitivity" in plain


def test_a_prior_the_data_cannot_support_is_left_out_with_its_reason() -> None:
    # Every arm at 0%: the bda prior's posterior is improper, the proper priors' are not.
    res = abpool.analyze_variants(successes=[0, 0, 0], trials=[10] * 3, prior="lognormal", seed=1)
    found = res.sensitivity()
    assert "bda" not in found.labels and "bda" in found.failed and "improper" in found.failed["bda"]
    assert any(sentence.startswith("bda could not be fitted") for sentence in found.sentences())
    assert found.to_dict()["failed"] == found.failed
