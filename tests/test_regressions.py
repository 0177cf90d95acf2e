"""Bugs that came from the two models growing apart, each reproduced as a user met it.

Every test here failed before the models shared one result contract.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import pytest

import abpool
from abpool.datasets import make_dataframe

ABPOOL = [sys.executable, "-m", "abpool"]


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def users_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "users.csv"
    make_dataframe(100, [30, 50, 55, 60]).to_csv(path, index=False)
    return path


def test_1_analyze_refuses_an_unconverged_fit_like_variants_does(article_cells_csv) -> None:
    proc = run("analyze", article_cells_csv, "--engine", "mcmc", "--draws", "100", "--tune", "10", "--seed", "1")
    assert proc.returncode == 1
    assert "NOT CONVERGED" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("abpool: error: the fit did not converge")


@pytest.mark.xdist_group("segments")
def test_2_rope_reaches_the_segments_model(users_csv) -> None:
    proc = run(
        "analyze", users_csv, "--segment", "country", "--arm", "treated", "--rope", "0.02", "--json", "--seed", "1"
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["settings"]["rope"] == 0.02
    treated = [row for row in payload["summary"] if not row["is_control"]]
    assert all(0 <= row["prob_in_rope"] <= 1 for row in treated)
    res = abpool.analyze(make_dataframe(100, [30, 50, 55, 60]), segment="country", arm="treated", rope=0.02, seed=1)
    assert "prob_in_rope" in res.summary()


def test_3_a_prior_cannot_be_declared_proper(tmp_path) -> None:
    with pytest.raises(TypeError):
        abpool.BDAPrior(proper=True)
    assert abpool.BDAPrior().proper is False
    with pytest.raises(abpool.InvalidDataError, match="improper"):
        abpool.analyze_variants(successes=[0, 0], trials=[10, 10], prior=abpool.BDAPrior())
    path = tmp_path / "zeros.csv"
    path.write_text("variant,trials,successes\nA,10,0\nB,10,0\n")
    proc = run("variants", path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "improper" in proc.stderr


def test_4_datasets_and_plots_come_with_import_abpool() -> None:
    code = (
        "import abpool\n"
        "frame = abpool.datasets.make_dataframe(100, [30, 50, 55, 60])\n"
        "res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=1)\n"
        "print(len(frame), type(abpool.plots.plot_posterior(res)).__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["400", "Figure"]


@pytest.mark.xdist_group("segments")
def test_5_terminal_and_report_show_the_same_point_estimates() -> None:
    import io

    from rich.console import Console

    from abpool.cli._render import render_result
    from abpool.report import render_report

    result = abpool.analyze_segments(make_dataframe(100, [30, 50, 55, 60]), segment="country", arm="treated", seed=3)
    console = Console(file=io.StringIO(), width=160, highlight=False, soft_wrap=False)
    render_result(result, console)
    terminal, html = console.file.getvalue(), render_report(result)
    # Every rate with its interval and every lift the terminal prints is printed identically in the report.
    rates = re.findall(r"\d\.\d{3} \(\d\.\d{3} – \d\.\d{3}\)", terminal)
    lifts = re.findall(r"[+-]\d+\.\d pp \([+-]\d+\.\d – [+-]\d+\.\d\)", terminal)
    assert len(rates) == 4 and len(lifts) == 2
    for text in rates + lifts:
        assert text in html, text
    # The population level (mu_b, a new segment's lift …): one statistic, one formatter, in both places.
    for row in result.population().itertuples():
        line = next(line for line in terminal.splitlines() if row.description in line)
        median = line.split(row.description)[1].split()[0]
        assert median in html, (row.description, median)


def test_6_the_level_reaches_the_population_intervals(article_cells_csv) -> None:
    narrow = json.loads(run("variants", article_cells_csv, "--ci", "0.9", "--json", "--seed", "2").stdout)
    wide = json.loads(run("variants", article_cells_csv, "--ci", "0.99", "--json", "--seed", "2").stdout)
    for small, big in zip(narrow["population"], wide["population"], strict=True):
        assert big["ci_low"] < small["ci_low"] < small["ci_high"] < big["ci_high"]
    table = run("variants", article_cells_csv, "--ci", "0.9", "--seed", "2").stdout
    assert "90% interval" in table and "95% interval" not in table


def test_7_convergence_error_on_request_and_one_line_on_the_command_line(article_cells_csv) -> None:
    with pytest.raises(abpool.ConvergenceError, match="did not converge"):
        abpool.analyze_variants(
            successes=[30, 50], trials=[100, 100], engine="mcmc", draws=100, tune=10, seed=1, on_unconverged="raise"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        abpool.analyze_variants(successes=[30, 50], trials=[100, 100], engine="mcmc", draws=100, tune=10, seed=1)
    convergence = [w for w in caught if issubclass(w.category, abpool.ConvergenceWarning)]
    assert len(convergence) == 1 and convergence[0].filename == __file__
    proc = run("variants", article_cells_csv, "--engine", "mcmc", "--draws", "100", "--tune", "10", "--seed", "1")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "abpool: error: the fit did not converge (see diagnostics); rerun with more --draws/--tune, "
        "or pass --allow-unconverged to accept it"
    ]
