"""The command line, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ABPOOL = [sys.executable, "-m", "abpool"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_variants_table(article_cells_csv) -> None:
    proc = run("variants", article_cells_csv, "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in ("arm", "pooling", "P(row beats column)", "prior: bda", "exact engine", "seed 3", "converged"):
        assert text in out


def test_variants_json(article_cells_csv, tmp_path) -> None:
    out_dir = tmp_path / "run"
    proc = run("variants", article_cells_csv, "--json", "--seed", "5", "--draws", "50000", "--out", out_dir)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    settings = payload["settings"]
    assert settings["seed"] == 5 and settings["engine"] == "exact" and settings["draws"] == 50_000
    assert [v["arm"] for v in payload["summary"]] == ["A", "B", "C", "D"]
    (b_over_c,) = [p["prob_greater"] for p in payload["prob_greater"] if (p["arm_i"], p["arm_j"]) == ("B", "C")]
    assert abs(b_over_c - 0.251) < 0.012
    assert (out_dir / "posterior.nc").exists() and (out_dir / "summary.json").exists()


def test_analyze_dispatches_and_rope(article_cells_csv) -> None:
    proc = run("analyze", article_cells_csv, "--rope", "0.05", "--control", "B", "--json", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["settings"]["control"] == "B" and payload["settings"]["rope"] == 0.05
    assert "prob_in_rope" in payload["summary"][0]


@pytest.mark.parametrize(
    ("body", "args", "message"),
    [
        ("variant,trials,successes\nA,100,30\nB,100,150\n", [], "more successes (150) than trials (100)"),
        ("variant,trials,successes\nA,100,30\n", [], "only one arm"),
        ("variant,trials,successes\nA,100,30\nB,100,40\n", ["--control", "Z"], "control arm 'Z'"),
        ("variant,trials,successes\nA,100,30\nB,100,40\n", ["--ci", "95"], "ci must be strictly between 0 and 1"),
        ("variant,trials,successes\nA,100,30\nB,100,40\n", ["--prior", "flat"], "prior must be one of bda, lognormal"),
        ("variant,trials,successes\nA,100,30\nB,100,40\n", ["--engine", "gibbs"], "engine must be one of exact, mcmc"),
        ("variant,trials,successes\nA,10,0\nB,10,10\n", [], "improper"),
        ("arm,converted\nA,1\nB,maybe\n", [], "has 'maybe'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, body, args, message) -> None:
    path = tmp_path / "data.csv"
    path.write_text(body)
    proc = run("variants", path, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abpool: error:")
    assert message in lines[0]
    assert proc.stdout == ""


def test_missing_file_exits_2(tmp_path) -> None:
    proc = run("variants", tmp_path / "missing.csv")
    assert proc.returncode == 2
    assert "no such file" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-flag"], "No such option: --no-such-flag"),
        (["--draws", "abc"], "Invalid value for '--draws'"),
        (["--ci", "high"], "Invalid value for '--ci'"),
    ],
)
def test_usage_errors_are_one_line(article_cells_csv, args, message) -> None:
    proc = run("variants", article_cells_csv, *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abpool: error:") and message in lines[0]


def test_missing_argument_is_one_line() -> None:
    proc = run("variants")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "abpool: error: Missing argument 'DATA'. (see 'abpool --help')"


@pytest.mark.parametrize("command", ["variants", "segments", "analyze", "demo", "report", "simulate"])
def test_every_command_has_help(command) -> None:
    proc = run(command, "--help")
    assert proc.returncode == 0
    assert "Usage" in proc.stdout


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("abpool ")


def test_demo_prints_both_scenarios(tmp_path) -> None:
    proc = run("demo", "--out", tmp_path / "demo")
    assert proc.returncode == 0, proc.stderr
    assert "Scenario: A with 100 trials" in proc.stdout
    assert "Scenario: A with 10 trials" in proc.stdout
    assert "Shrinkage of A" in proc.stdout
    assert f"report: {tmp_path / 'demo' / 'report.html'}" in proc.stdout
    assert (tmp_path / "demo" / "report.html").stat().st_size > 100_000


def test_input_file_is_untouched(article_cells_csv) -> None:
    before = article_cells_csv.read_bytes()
    run("variants", article_cells_csv, "--seed", "1")
    assert article_cells_csv.read_bytes() == before


def test_unconverged_variants_fit_exits_1_with_one_line(article_cells_csv) -> None:
    # Ten draws per chain cannot reach the ESS threshold: the table is printed, then the fit is refused.
    proc = run("variants", article_cells_csv, "--engine", "mcmc", "--draws", "100", "--tune", "10", "--seed", "1")
    assert proc.returncode == 1
    assert "NOT CONVERGED" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("abpool: error: the fit did not converge")
    allowed = run(
        "variants",
        article_cells_csv,
        "--engine",
        "mcmc",
        "--draws",
        "100",
        "--tune",
        "10",
        "--seed",
        "1",
        "--allow-unconverged",
    )
    assert allowed.returncode == 0
