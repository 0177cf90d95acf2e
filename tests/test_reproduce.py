"""A result's ``reproduce`` command, run as printed, refits the same data to the same numbers.

Its source is read as the result's was: the database's table or query, and only the
rows that were kept — one experiment of a batch, one metric of a long table.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

import abpool
from abpool.batch import analyze_batch
from abpool.data.origin import Origin

ABPOOL = [sys.executable, "-m", "abpool"]


def refit(command: str, cwd=None) -> dict:
    """Run a reproduce command (``abpool …``) with this interpreter; its JSON."""
    args = shlex.split(command)
    assert args[0] == "abpool"
    proc = subprocess.run([*ABPOOL, *args[1:], "--json"], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_same_answers(saved: dict, again: dict) -> None:
    assert again["data"]["fingerprint"] == saved["data"]["fingerprint"]
    assert again["summary"] == saved["summary"]


def units(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for index, n in enumerate((300, 500, 400)):
        frames.append(
            pd.DataFrame(
                {
                    "experiment": f"exp {index + 1}'s",  # a quote in the name: the condition must still hold
                    "variant": rng.choice(["control", "B"], n),
                    "converted": rng.integers(0, 2, n),
                    "revenue": rng.gamma(2.0, 10.0, n).round(2),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("model", ["variants", "means"])
def test_each_batch_experiments_command_refits_that_experiment_alone(seed, tmp_path, model) -> None:
    path = tmp_path / "events.csv"
    units(seed).to_csv(path, index=False)
    options = {"outcome": "converted"} if model == "variants" else {"value": "revenue"}
    done = analyze_batch(path, out=tmp_path / "out", seed=seed, reports=True, **options)
    assert (done.statuses()["status"] == "ok").all()
    for run in sorted((tmp_path / "out" / "experiments").glob("*/summary.json")):
        saved = json.loads(run.read_text())
        origin = saved["data"]["origin"]
        assert origin["location"] == str(path) and origin["experiment"] in {"exp 1's", "exp 2's", "exp 3's"}
        assert_same_answers(saved, refit(saved["provenance"]["reproduce"]))
        heading = f"Experiment {origin['experiment']} — "
        report = (run.parent / "report.html").read_text()
        assert heading.replace("'", "&#39;") in report
        assert origin["where"].replace("'", "&#39;").replace('"', "&#34;") in report


def test_a_duckdb_tables_command_reads_the_table_again(seed, tmp_path) -> None:
    database = tmp_path / "shop.duckdb"
    with duckdb.connect(str(database)) as con:
        frame = units(seed).query('experiment == "exp 2\'s"')
        con.register("frame", frame)
        con.execute("CREATE TABLE orders AS SELECT * FROM frame")
        con.execute("CREATE TABLE other AS SELECT 1 AS x")
    cells = abpool.load_cells(str(database), table="orders", outcome="converted")
    saved = abpool.analyze_variants(cells, seed=seed).to_dict()
    assert saved["data"]["origin"]["table"] == "orders"
    assert_same_answers(saved, refit(saved["provenance"]["reproduce"]))
    query = "SELECT * FROM orders WHERE variant IS NOT NULL"
    options = ["--where", "converted >= 0", "--outcome", "converted", "--json", "--seed", "3"]
    proc = subprocess.run(
        [*ABPOOL, "variants", str(database), "--query", query, *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(proc.stdout)
    assert saved["provenance"]["reproduce"].count("--where") == 1
    assert_same_answers(saved, refit(saved["provenance"]["reproduce"]))


def test_where_keeps_only_the_rows_meeting_it_and_refuses_a_database_server(seed, tmp_path) -> None:
    path = tmp_path / "events.csv"
    table = units(seed)
    table.to_csv(path, index=False)
    one = abpool.analyze_variants(table[table.experiment == "exp 1's"].drop(columns="experiment"), seed=seed)
    options = ["--where", "experiment = 'exp 1''s'", "--json", "--outcome", "converted", "--seed", str(seed)]
    proc = subprocess.run(
        [*ABPOOL, "variants", str(path), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["data"]["fingerprint"] == one.cells.fingerprint
    server = subprocess.run(
        [*ABPOOL, "variants", "postgresql://me@db.invalid/shop", "--table", "t", "--where", "x = 1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert server.returncode == 2 and server.stderr.count("\n") == 1 and "where applies to files" in server.stderr


def test_a_relative_paths_command_reads_the_same_file_from_any_directory(seed, tmp_path) -> None:
    (tmp_path / "data").mkdir()
    units(seed).to_csv(tmp_path / "data" / "events.csv", index=False)
    options = ["--where", "experiment = 'exp 3''s'", "--outcome", "converted", "--seed", str(seed), "--json"]
    proc = subprocess.run(
        [*ABPOOL, "variants", "data/events.csv", *options], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(proc.stdout)
    assert saved["data"]["origin"]["location"] == str(tmp_path / "data" / "events.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_same_answers(saved, refit(saved["provenance"]["reproduce"], cwd=elsewhere))


def test_a_servers_rows_are_chosen_by_the_query_it_runs() -> None:
    origin = Origin("postgresql://me@db/shop", query="SELECT * FROM events", where="CAST(\"e\" AS VARCHAR) = 'a'")
    assert origin.command_source() == [
        "postgresql://me@db/shop",
        "--query",
        "SELECT * FROM (SELECT * FROM events) AS abpool_rows WHERE CAST(\"e\" AS VARCHAR) = 'a'",
    ]
    assert Origin.from_record(origin.to_record()) == origin and Origin.from_record(None) is None


def test_a_result_from_a_dataframe_has_no_location_to_name(seed) -> None:
    result = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=seed)
    assert result.reproduce_command().split()[:3] == ["abpool", "variants", "DATA"]


@pytest.mark.parametrize(
    ("model", "condition", "message"),
    [
        ("variants", "nonsense !!", "the condition 'nonsense !!' (where) cannot be applied: Parser Error"),
        ("variants", "no_such_col = 1", 'cannot be applied: Binder Error: Referenced column "no_such_col"'),
        ("variants", "experiment = 'nope'", "meets the condition \"experiment = 'nope'\" (where); check it"),
        ("means", "variant = 'Z'", "meets the condition \"variant = 'Z'\" (where); check it"),
        # The file reads; the condition fails as it is applied to the rows: the condition is named, not the file.
        ("variants", "CAST(variant AS INTEGER) = 1", "(where) cannot be applied: Conversion Error"),
        ("batch", "CAST(variant AS INTEGER) = 1", "(where) cannot be applied: Conversion Error"),
        ("batch", "no_such_col = 1", 'cannot be applied: Binder Error: Referenced column "no_such_col"'),
        ("batch", "experiment = 'nope'", "meets the condition \"experiment = 'nope'\" (where); check it"),
    ],
)
def test_a_bad_or_empty_condition_is_refused_in_one_line_naming_it(seed, tmp_path, model, condition, message) -> None:
    path = tmp_path / "events.csv"
    units(seed).to_csv(path, index=False)
    column = ["--value", "revenue"] if model == "means" else ["--outcome", "converted"]
    out = ["--out", str(tmp_path / "out")] if model == "batch" else []
    proc = subprocess.run(
        [*ABPOOL, model, str(path), *out, "--where", condition, *column], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


@pytest.mark.parametrize("model", ["variants", "means", "metrics"])
def test_a_batch_with_a_condition_fits_only_the_rows_meeting_it(seed, tmp_path, model) -> None:
    path = tmp_path / "events.csv"
    table = units(seed)
    table.to_csv(path, index=False)
    options = {
        "variants": {"outcome": "converted"},
        "means": {"value": "revenue"},
        "metrics": {"metrics": ["converted", "revenue"]},
    }[model]
    # A comment ends the condition: it must not swallow the experiment's own condition joined after it.
    condition = "experiment <> 'exp 2''s' AND converted IS NOT NULL -- all but the second"
    done = analyze_batch(path, out=tmp_path / "out", seed=seed, where=condition, reports=False, **options)
    assert list(done.statuses()["experiment"]) == ["exp 1's", "exp 3's"]
    assert (done.statuses()["status"] == "ok").all()
    # The same experiments fitted from the rows chosen beforehand: the same data, the same numbers.
    chosen = tmp_path / "chosen.csv"
    table[table.experiment != "exp 2's"].to_csv(chosen, index=False)
    alone = analyze_batch(chosen, out=tmp_path / "alone", seed=seed, reports=False, **options)
    assert done.table.drop(columns="data_fingerprint", errors="ignore").equals(
        alone.table.drop(columns="data_fingerprint", errors="ignore")
    )
    if model != "metrics":
        saved = json.loads(next((tmp_path / "out" / "experiments").glob("*/summary.json")).read_text())
        assert saved["data"]["origin"]["where"].startswith(f"({condition}\n) AND ")
        assert_same_answers(saved, refit(saved["provenance"]["reproduce"]))


def test_a_batch_from_a_database_server_takes_its_rows_from_the_query(tmp_path) -> None:
    with pytest.raises(abpool.InvalidArgumentError, match=r"choose the rows with query"):
        analyze_batch("postgresql://me@db.invalid/shop", table="events", where="x = 1", out=tmp_path / "out")
