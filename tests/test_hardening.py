"""Hostile input, one test per category: names, counts, files, output directories, crashes, tampering.

The contract is the README's: exit 0 ok, 1 refused (not converged), 2 bad input — always one
line naming the value at fault, never a traceback, never a plausible number from misread data.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abpool
from abpool.data import load_cells
from abpool.datasets import article_variants
from abpool.segments.layout import layout_from_cells

ABPOOL = [sys.executable, "-m", "abpool"]
CELLS = "variant,trials,successes\nA,100,30\nB,100,50\nC,100,55\nD,100,60\n"


def run(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abpool: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# ------------------------------------------------------------------ data read wrongly or lost
def test_combined_segment_labels_stay_one_to_one() -> None:
    frame = pd.DataFrame(
        {
            "x": ["A / B", "A / B", "A", "A"],
            "y": ["C", "C", "B / C", "B / C"],
            "arm": ["c", "t", "c", "t"],
            "trials": [100, 100, 200, 200],
            "successes": [10, 20, 30, 40],
        }
    )
    cells = load_cells(frame, segment=["x", "y"])
    layout = layout_from_cells(cells, "c")
    assert len(layout.segments) == 2 and len(set(layout.segments)) == 2
    assert layout.trials.sum() == 600  # nothing merged, nothing dropped
    from abpool.classical import classical_comparisons

    table = classical_comparisons(cells, control="c")
    assert list(table["segment"]) == list(layout.segments)
    assert list(table["trials_i"]) == [100, 200]


@pytest.mark.parametrize("name", ["exp[1].csv", "star*.csv", "what?.csv", "braces{a,b}.csv"])
def test_file_names_are_read_literally(tmp_path, name) -> None:
    (tmp_path / name).write_text("variant,trials,successes\nA,10,1\nB,10,9\n")
    # Files a glob reading of the name would pick up instead (or as well).
    for decoy in ("exp1.csv", "star.csv", "starX.csv", "whatX.csv", "bracesa.csv"):
        (tmp_path / decoy).write_text("variant,trials,successes\nZ,99,1\nY,99,2\n")
    cells = load_cells(tmp_path / name)
    assert cells.arms == ("A", "B") and cells.source == str(tmp_path / name)


@pytest.mark.parametrize("column", ["__abpool_row", "__abpool_row_"])
@pytest.mark.parametrize("source", ["DataFrame", "csv"])
def test_a_column_named_like_an_internal_one_changes_nothing(tmp_path, column, source) -> None:
    frame = pd.DataFrame({column: [9, 1], "variant": ["A", "B"], "trials": [100, 100], "successes": [30, 60]})
    data: object = frame
    if source == "csv":
        data = tmp_path / "data.csv"
        frame.to_csv(data, index=False)
    cells = load_cells(data)
    assert cells.arms == ("A", "B")  # data order: A stays the control
    assert abpool.analyze_variants(data, seed=1).control == "A"


@pytest.mark.parametrize("labels", [["A", " A"], ["A", "A "], ["A", "a"], ["Ctl", "ctl "]])
def test_labels_differing_only_by_spaces_or_case_are_refused(labels) -> None:
    frame = pd.DataFrame({"variant": labels, "trials": [100, 100], "successes": [30, 60]})
    with pytest.raises(abpool.InvalidDataError, match="differ only by spaces or case") as caught:
        load_cells(frame)
    assert all(repr(label) in str(caught.value) for label in labels)
    segments = pd.DataFrame(
        {"country": ["CA", "CA", "ca", "ca"], "arm": ["c", "t", "c", "t"], "trials": [10] * 4, "successes": [1] * 4}
    )
    with pytest.raises(abpool.InvalidDataError, match=r"column .country. .* differ only by spaces or case"):
        load_cells(segments, segment="country")


def test_a_segment_without_a_cell_is_refused() -> None:
    frame = pd.DataFrame(
        {"country": ["CA", "CA", "US"], "arm": ["c", "t", "c"], "trials": [100, 100, 100], "successes": [1, 2, 3]}
    )
    with pytest.raises(abpool.InvalidDataError, match="segment 'US' has no treatment cell for arm 't'"):
        layout_from_cells(load_cells(frame, segment="country"), "c")
    no_control = frame.assign(arm=["c", "t", "t"])
    with pytest.raises(abpool.InvalidDataError, match="segment 'US' has no control cell for arm 'c'"):
        layout_from_cells(load_cells(no_control, segment="country"), "c")


# ------------------------------------------------------------------ extreme values
@pytest.mark.parametrize("value", ["100000000000000000000", "1e30", "1e17", "18446744073709551616"])
def test_counts_beyond_the_supported_range_are_refused(tmp_path, value) -> None:
    path = tmp_path / "big.csv"
    path.write_text(f"variant,trials,successes\nA,{value},1\nB,100,50\n")
    line = one_line_error(run("variants", path))
    assert "row 1" in line and "10^15" in line


def test_the_largest_supported_counts_are_fast_and_exact(tmp_path) -> None:
    # 10^13 users per arm with a handful of conversions: the classical tests once took minutes here.
    path = tmp_path / "huge.csv"
    path.write_text(
        "variant,trials,successes\nA,10000000000000,1\nB,10000000000000,2\nC,1000000000000000,1000000000000000\n"
    )
    start = time.perf_counter()
    proc = run("variants", path, "--json", "--classical", "--seed", "1", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - start < 60
    payload = json.loads(proc.stdout)
    rates = {row["arm"]: row["rate"] for row in payload["summary"]}
    assert rates["C"] == 1.0 and rates["A"] < 1e-12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--draws", "3"], "draws must be an integer of at least 1000"),
        (["--engine", "mcmc", "--chains", "1"], "chains must be an integer of at least 2"),
        (["--engine", "mcmc", "--draws", "20"], "draws must be an integer of at least 100 per chain"),
    ],
)
def test_settings_too_small_to_support_the_numbers_are_refused(tmp_path, args, message) -> None:
    path = tmp_path / "cells.csv"
    path.write_text(CELLS)
    assert message in one_line_error(run("variants", path, *args))


def test_segments_settings_too_small_are_refused() -> None:
    frame = abpool.datasets.make_dataframe(10, [3, 5, 5, 6])
    with pytest.raises(abpool.InvalidArgumentError, match="chains must be an integer of at least 2"):
        abpool.analyze_segments(frame, segment="country", arm="treated", chains=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--draws", "5"], "draws must be an integer of at least 100 per chain, got 5"),
        (["--tune", "0"], "tune must be an integer of at least 1, got 0"),
        (["--target-accept", "1.5"], "target_accept must be between 0.5 and 1 (exclusive), got 1.5"),
        (["--target-accept", "0.3"], "target_accept must be between 0.5 and 1 (exclusive), got 0.3"),
    ],
)
def test_segments_draws_and_tuning_left_to_their_defaults_are_still_checked_when_given(tmp_path, args, message) -> None:
    # Both default to a value chosen from the model (draws by its size, tuning by its path); a given value is
    # refused in one line before any data is read.
    proc = run("segments", tmp_path / "missing.csv", "--segment", "country", *args)
    assert proc.returncode == 2
    assert message in one_line_error(proc)


def test_ten_thousand_variants_save_and_compare_in_bounded_memory(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = np.full(10_000, 2_000)
    frame = pd.DataFrame({"variant": [f"v{i}" for i in range(n.size)], "trials": n})
    frame["successes"] = rng.binomial(n, rng.beta(40, 960, size=n.size))
    path = tmp_path / "many.csv"
    frame.to_csv(path, index=False)
    proc = run("variants", path, "--classical", "--seed", "1", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "classical comparison left out" in proc.stdout
    payload = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert payload["classical"] is None and payload["prob_greater"] is None and len(payload["summary"]) == 10_000
    with pytest.raises(abpool.InvalidArgumentError, match="49,995,000 pairs"):
        abpool.load(tmp_path / "run").classical()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"successes": [[1, 2], [3, 4]], "trials": [[5, 5], [5, 5]]}, abpool.InvalidArgumentError, "shape \\(2, 2\\)"),
        ({"successes": [1.5, 2], "trials": [5, 5]}, abpool.InvalidArgumentError, "whole numbers, got 1.5"),
        ({"successes": [1, 2], "trials": [5, 10**17]}, abpool.InvalidArgumentError, "between 0 and 10\\^15"),
        ({"successes": [1, 2], "trials": [5, 5], "names": "AB"}, abpool.InvalidArgumentError, "names must be a list"),
    ],
)
def test_count_arrays_are_validated(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        abpool.analyze_variants(**kwargs)


def test_numpy_and_big_python_integers_are_counts() -> None:
    trials = np.array([10**12, 10**12], dtype=np.uint64)
    res = abpool.analyze_variants(successes=[3 * 10**11, 10**12 // 3], trials=trials, seed=1)
    assert res.counts()[0].tolist() == [10**12, 10**12]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: abpool.analyze_segments(article_variants(), segment=[1, 2]), "segment must be a column name"),
        (lambda: abpool.analyze_variants(article_variants(), arm=3), "arm must be a column name"),
        (lambda: abpool.load(3), "directory must be a path"),
        (lambda: abpool.analyze_variants(42), "data must be a pandas DataFrame or a path"),
    ],
)
def test_public_functions_refuse_foreign_types_in_one_line(call, message) -> None:
    with pytest.raises(abpool.AbpoolError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------ names that break terminals, figures, shells
def test_markup_and_escape_sequences_in_names_are_shown_not_obeyed(tmp_path) -> None:
    names = ["[/red]", "[control]", "B\x1b[2J\x1b]0;pwned\x07", "$5 off"]
    frame = pd.DataFrame({"variant": names, "trials": [100] * 4, "successes": [30, 50, 55, 60]})
    path = tmp_path / "names.csv"
    frame.to_csv(path, index=False)
    proc = run("variants", path, "--seed", "1", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "[/red]" in proc.stdout and "[control]" in proc.stdout and "\\x1b[2J" in proc.stdout
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "\x1b" not in html and "\\x1b[2J" in html
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["arms"] == names  # the data, unchanged
    assert run("report", tmp_path / "run").returncode == 0


def test_the_reproduce_command_is_quoted_complete_and_reproduces(tmp_path) -> None:
    name = "x$(touch PWNED).csv"
    (tmp_path / name).write_text("arm,n,conv\nA,100,30\nB,100,50\n")
    proc = run(
        "variants", name, "--arm", "arm", "--trials", "n", "--successes", "conv", "--json", "--seed", "3", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    command = first["provenance"]["reproduce"]
    assert "--trials n" in command and "--successes conv" in command
    # Pasted into a shell, the line runs abpool on the file and nothing else.
    shell = command.replace("abpool", shlex.join(ABPOOL), 1) + " --json"
    again = subprocess.run(shell, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "PWNED").exists()
    second = json.loads(again.stdout)
    first["provenance"].pop("created"), second["provenance"].pop("created")
    # The line names the file by its absolute path (it works from any directory); the source is shown as given.
    assert (first["data"].pop("source"), second["data"].pop("source")) == (name, str(tmp_path / name))
    assert (first["provenance"].pop("data_source"), second["provenance"].pop("data_source")) == (
        name,
        str(tmp_path / name),
    )
    assert first == second


# ------------------------------------------------------------------ output directories
@pytest.fixture
def cells_csv(tmp_path) -> Path:
    path = tmp_path / "cells.csv"
    path.write_text(CELLS)
    return path


@pytest.mark.parametrize("case", ["file", "dangling link", "below a file", "foreign files"])
def test_bad_out_directories_are_refused_before_the_fit(tmp_path, cells_csv, case) -> None:
    out = tmp_path / "out"
    if case == "file":
        out.write_text("mine")
    elif case == "dangling link":
        out.symlink_to(tmp_path / "nowhere")
    elif case == "below a file":
        (tmp_path / "blocker").write_text("mine")
        out = tmp_path / "blocker" / "out"
    else:
        out.mkdir()
        (out / "report.html").write_text("my own report")
        (out / "notes.txt").write_text("my notes")
    line = one_line_error(run("variants", cells_csv, "--out", out))
    assert str(out) in line
    if case == "foreign files":
        assert "--force" in line and (out / "report.html").read_text() == "my own report"
        proc = run("variants", cells_csv, "--out", out, "--force", "--seed", "1")
        assert proc.returncode == 0, proc.stderr
        assert (out / "notes.txt").read_text() == "my notes" and abpool.load(out).seed == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only directory")
def test_a_read_only_out_is_refused(tmp_path, cells_csv) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert "not writable" in one_line_error(run("variants", cells_csv, "--out", locked / "run"))
    finally:
        locked.chmod(0o755)


def test_a_saved_run_replaces_the_previous_one_whole(tmp_path) -> None:
    out = tmp_path / "run"
    abpool.analyze_variants(article_variants(), seed=1).save(out)
    abpool.analyze_variants(article_variants(), seed=2).save(out, report=False)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "posterior.nc", "summary.json"]
    assert abpool.load(out).seed == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no work directory left behind


@pytest.mark.slow
def test_kill_9_during_out_never_leaves_a_mixed_run(tmp_path, cells_csv) -> None:
    out = tmp_path / "run"
    rng = random.Random(os.environ.get("ABPOOL_TEST_SEED", "kill"))
    seeds = set()
    for attempt in range(10):
        seed = attempt + 1
        seeds.add(seed)
        process = subprocess.Popen(
            [*ABPOOL, "variants", str(cells_csv), "--seed", str(seed), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 3.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if out.exists():
            assert not [
                p.name
                for p in out.iterdir()
                if p.name not in {"manifest.json", "posterior.nc", "summary.json", "report.html"}
            ]
            try:
                result = abpool.load(out)
            except abpool.InvalidDataError:
                continue
            assert result.seed in seeds
            summary = json.loads((out / "summary.json").read_text())
            assert summary["settings"]["seed"] == result.seed
    assert run("variants", cells_csv, "--seed", "99", "--out", out).returncode == 0
    assert abpool.load(out).seed == 99
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".abpool-")] == []


# ------------------------------------------------------------------ tampered or corrupted saved runs
def _edit_summary(directory: Path, change) -> None:
    payload = json.loads((directory / "summary.json").read_text())
    change(payload)
    (directory / "summary.json").write_text(json.dumps(payload))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda d: _edit_summary(d, lambda p: p["summary"][0].update(rate=0.9)), "summary.json .* does not match"),
        (lambda d: _edit_summary(d, lambda p: p["settings"].update(seed=7)), "summary.json .* does not match"),
        (lambda d: _edit_summary(d, lambda p: p["prior"].update(name="lognormal")), "summary.json .* does not match"),
        (lambda d: _edit_summary(d, lambda p: p["settings"].update(ci="0.95")), "summary.json .* does not match"),
        (
            lambda d: (d / "posterior.nc").write_bytes((d / "posterior.nc").read_bytes()[:5000]),
            "posterior.nc .* does not match",
        ),
        (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
        (lambda d: (d / "manifest.json").write_text("[1, 2"), "not a readable abpool manifest"),
    ],
)
def test_a_changed_run_is_refused_in_one_line(tmp_path, tamper, message) -> None:
    out = abpool.analyze_variants(article_variants(), seed=1).save(tmp_path / "run", report=False)
    tamper(out)
    with pytest.raises(abpool.InvalidDataError, match=message) as caught:
        abpool.load(out)
    assert "\n" not in str(caught.value)
    assert message.split(" .*")[0].split()[0] in one_line_error(run("report", out))


def test_draws_from_another_fit_of_the_same_data_are_refused(tmp_path) -> None:
    first = abpool.analyze_variants(article_variants(), seed=1).save(tmp_path / "one", report=False)
    second = abpool.analyze_variants(article_variants(), seed=2).save(tmp_path / "two", report=False)
    shutil.copyfile(second / "posterior.nc", first / "posterior.nc")
    # Even with the manifest rewritten to match, the draws and the summary are of different fits.
    from abpool.store import write_manifest

    write_manifest(first, model="variants")
    with pytest.raises(abpool.InvalidDataError, match="come from different fits"):
        abpool.load(first)


# ------------------------------------------------------------------ reproducibility
def test_the_same_command_gives_the_same_numbers(tmp_path) -> None:
    # The segments model's same-seed test runs in process (tests/test_contract.py), where it needs no compile.
    path = tmp_path / "users.csv"
    abpool.datasets.make_dataframe(100, [30, 50, 55, 60]).to_csv(path, index=False)
    args = ["variants", path, "--arm", "country", "--seed", "11", "--json"]
    first, second = (json.loads(run(*args).stdout) for _ in range(2))
    assert first["provenance"].pop("created") and second["provenance"].pop("created")
    assert first == second


# ------------------------------------------------------------------ any name, every output
NAME = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


CELL = st.text(st.characters(codec="utf-8"), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    columns=st.lists(CELL, min_size=1, max_size=6),
    rows=st.lists(st.lists(CELL, min_size=6, max_size=6), max_size=4),
    numeric=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_the_terminal_measures_a_table_as_rich_lays_it_out(columns, rows, numeric) -> None:
    """The width that decides where a table splits is the width Rich prints it at, whatever the text."""
    import io

    from rich.console import Console

    from abpool.cli._render import _rich, column_widths, table_width
    from abpool.report.blocks import Table

    table = Table("t", tuple(columns), tuple(tuple(row[: len(columns)]) for row in rows), tuple(numeric))
    console = Console(file=io.StringIO(), width=80)
    everything = list(range(len(columns)))
    for indices in (everything, everything[:1], everything[::2]):
        measured = console.measure(_rich(table, indices, None), options=console.options.update_width(100_000))
        assert table_width(column_widths(table), indices) == measured.maximum


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(NAME, min_size=2, max_size=4, unique_by=lambda n: n.strip().casefold()))
def test_any_unicode_markup_or_control_name_survives_every_output(names) -> None:
    """Whatever the names, they are refused in one line or shown safely in terminal, JSON, HTML and figures."""
    import io

    from rich.console import Console

    from abpool.cli._render import render_result
    from abpool.report import render_fragment

    frame = pd.DataFrame(
        {"variant": names, "trials": [50] * len(names), "successes": [10 + i for i in range(len(names))]}
    )
    try:
        result = abpool.analyze_variants(frame, seed=1)
    except abpool.AbpoolError as exc:
        assert "\n" not in str(exc)
        return
    console = Console(file=io.StringIO(), width=160, highlight=False, soft_wrap=False)
    render_result(result, console)
    terminal = console.file.getvalue()
    assert not any(ord(char) < 32 and char != "\n" for char in terminal)
    payload = json.loads(result.to_json())
    assert payload["arms"] == [str(n) for n in names]
    html = render_fragment(result)
    assert not any(ord(char) < 32 and char not in "\n\t" for char in html)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a figure that cannot draw a name fails, rather than warn
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        for figure in (result.plot_shrinkage(), result.plot_prob_greater()):
            figure.savefig(io.BytesIO(), format="svg")
