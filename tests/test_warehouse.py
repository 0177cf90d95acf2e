"""Databases as sources: a real PostgreSQL server, Ibis tables, and the SQL written for other warehouses.

The independent truth for every read is the same data read from a DataFrame
by DuckDB (the file path of :mod:`abpool.data.local`): the cells, and so the
fingerprint, must be identical.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.postgres_server import PASSWORD, running

import abpool
from abpool.data import load_cells
from abpool.data.warehouse import shown_url, sufficient_statistics_sql
from abpool.errors import InvalidArgumentError, InvalidDataError

pytestmark = pytest.mark.xdist_group("postgres")
psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
ibis = pytest.importorskip("ibis", reason="the postgres extra (Ibis) is not installed")


@pytest.fixture(scope="module")
def server():
    try:
        with running() as started:
            yield started
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL server for these tests: {exc}")


def _units(seed: int, experiments: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for e in range(experiments):
        n = 400 + 100 * e
        frames.append(
            pd.DataFrame(
                {
                    "experiment": f"exp{e + 1}",
                    "country": rng.choice(["Canada", "China"], n),
                    "variant": rng.choice(["control", "B", "C"][: 2 + e % 2], n),
                    "converted": rng.integers(0, 2, n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _load(server, frame: pd.DataFrame, table: str) -> None:
    with psycopg.connect(server.url, autocommit=True) as con:
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
        types = {"int64": "BIGINT", "bool": "BOOLEAN", "float64": "DOUBLE PRECISION"}
        columns = ", ".join(f'"{c}" {types.get(str(t), "TEXT")}' for c, t in frame.dtypes.items())
        con.execute(f'CREATE TABLE "{table}" ({columns})')
        with con.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
            for row in frame.itertuples(index=False):
                copy.write_row([None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row])


def _secret_free(text: str) -> None:
    assert PASSWORD not in text


def test_unit_rows_are_aggregated_in_postgres_to_the_same_cells_as_a_dataframe(server, seed):
    frame = _units(seed)
    _load(server, frame, "events")
    mine = frame[frame.experiment == "exp2"].drop(columns="experiment")
    _load(server, mine, "one_experiment")
    got = load_cells(server.url, table="one_experiment", segment="country")
    truth = load_cells(mine, segment="country")
    assert got.fingerprint == truth.fingerprint
    assert got.table.equals(truth.table)
    assert (got.form, got.outcome_column, got.input_rows) == ("units", "converted", len(mine))
    assert got.source == f"{server.url_without_password} (table 'one_experiment')"


@pytest.mark.parametrize("kind", ["boolean", "float", "string"])
def test_every_outcome_type_counts_like_the_file_path(server, seed, kind):
    frame = _units(seed, experiments=1).drop(columns="experiment")
    if kind == "boolean":
        frame["converted"] = frame["converted"].astype(bool)
    elif kind == "float":
        frame["converted"] = frame["converted"].astype(float)
    else:
        frame["converted"] = frame["converted"].map({0: "false", 1: " TRUE"})
    _load(server, frame, f"typed_{kind}")
    assert load_cells(server.url, table=f"typed_{kind}").fingerprint == load_cells(frame).fingerprint


def test_a_query_runs_in_the_server_and_aggregated_cells_are_read_as_they_are(server, seed):
    frame = _units(seed)
    _load(server, frame, "events")
    query = "SELECT variant, country, converted FROM events WHERE experiment = 'exp1'"
    got = load_cells(server.url, query=query, segment="country")
    assert got.fingerprint == load_cells(frame[frame.experiment == "exp1"], segment="country").fingerprint
    cells = load_cells(frame, segment=["experiment", "country"]).table.rename(columns={"arm": "variant"})
    _load(server, cells, "cells")
    with psycopg.connect(server.url, autocommit=True) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS shop")
        con.execute("DROP TABLE IF EXISTS shop.cells")
        con.execute("CREATE TABLE shop.cells AS SELECT * FROM cells")
    read = load_cells(server.url, table="shop.cells", segment=["experiment", "country"])
    assert read.form == "cells" and read.trials_column == "trials"
    assert read.fingerprint == load_cells(frame, segment=["experiment", "country"]).fingerprint


def test_the_group_by_runs_inside_the_database(server, seed):
    """The server's own statement log shows the aggregation, and only cells come back."""
    frame = _units(seed)
    _load(server, frame, "events")
    logged = server.log.read_text() if server.log.exists() else ""
    cells = load_cells(server.url, table="events", segment=["experiment", "country"])
    assert len(cells.table) == frame.groupby(["experiment", "country", "variant"]).ngroups
    statements = server.log.read_text()[len(logged) :]
    aggregations = [s for s in statements.split("statement: ")[1:] if '"events"' in s and "GROUP BY" in s]
    assert aggregations, statements[-2000:]
    assert "COUNT(*)" in aggregations[0]


def test_a_batch_over_postgres_refuses_only_the_experiments_at_fault(server, seed, tmp_path):
    frame = _units(seed, experiments=4)
    frame["converted"] = frame["converted"].astype(str)
    frame.loc[frame.index[frame.experiment == "exp2"][5], "converted"] = "maybe"
    frame.loc[frame.index[frame.experiment == "exp3"][7], "variant"] = None
    _load(server, frame, "events")
    done = abpool.analyze_batch(server.url, table="events", out=tmp_path / "out", seed=seed, reports=False)
    statuses = done.statuses().set_index("experiment")
    assert statuses.loc[["exp1", "exp4"], "status"].tolist() == ["ok", "ok"]
    assert statuses.loc["exp2", "status"] == "refused"
    assert "outcome column 'converted' must be 0/1 or true/false, but 1 rows" in statuses.loc["exp2", "reason"]
    assert "'maybe'" in statuses.loc["exp2", "reason"]
    assert "arm column 'variant' is empty in 1 rows" in statuses.loc["exp3", "reason"]
    clean = frame[frame.experiment == "exp4"].drop(columns="experiment").astype({"converted": int})
    assert done.result("exp4").cells.fingerprint == load_cells(clean).fingerprint
    with pytest.raises(InvalidDataError, match="'maybe'"):
        load_cells(server.url, query="SELECT * FROM events WHERE experiment = 'exp2'")


def test_an_empty_experiment_name_makes_the_table_unusable(server, seed, tmp_path):
    frame = _units(seed, experiments=2)
    frame.loc[3, "experiment"] = None
    _load(server, frame, "events")
    with pytest.raises(InvalidDataError, match="experiment column 'experiment' is empty in 1 rows"):
        abpool.analyze_batch(server.url, table="events", out=tmp_path, seed=1)


def test_the_password_is_never_shown(server, seed, tmp_path):
    frame = _units(seed, experiments=2)
    _load(server, frame, "events")
    for call in (
        lambda: load_cells(server.url, table="no_such_table"),
        lambda: load_cells(server.url, query="SELECT * FROM nowhere"),
        lambda: load_cells(server.url.replace(PASSWORD, PASSWORD + "x"), table="events"),
        lambda: load_cells(server.url),
    ):
        with pytest.raises((InvalidDataError, InvalidArgumentError)) as caught:
            call()
        _secret_free(str(caught.value))
    wrong = _raised(lambda: load_cells(server.url.replace(PASSWORD, "wrong"), table="events"))
    assert "password authentication failed" in str(wrong)
    out = tmp_path / "out"
    abpool.analyze_batch(server.url, table="events", out=out, seed=seed)
    for path in out.rglob("*"):
        if path.is_file():
            _secret_free(path.read_bytes().decode("latin-1"))
    assert shown_url(server.url) == server.url_without_password


def _raised(call) -> Exception:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abpool", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_the_command_line_reads_postgres_with_the_password_from_the_environment(server, seed, tmp_path):
    frame = _units(seed, experiments=2)
    _load(server, frame, "events")
    url = server.url_without_password
    done = _cli("batch", url, "--table", "events", "--out", str(tmp_path / "out"), "--seed", "3", "--no-reports",
                env={"PGPASSWORD": PASSWORD})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 experiments: 2 ok" in done.stdout
    _secret_free(done.stdout + done.stderr)
    one = _cli("variants", url, "--query", "SELECT * FROM events WHERE experiment = 'exp1'", "--json",
               env={"PGPASSWORD": PASSWORD})  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["data"]["source"] == f"{url} (the query)"
    missing = _cli("variants", url, env={"PGPASSWORD": PASSWORD})
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "--table NAME" in missing.stderr
    wrong = _cli("variants", url, "--table", "events", env={"PGPASSWORD": "wrong"})
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.mark.parametrize("dialect", ["bigquery", "snowflake", "databricks", "postgres", "trino"])
def test_the_aggregation_compiles_to_each_warehouse_dialect(dialect):
    sqlglot = pytest.importorskip("sqlglot")
    sql = sufficient_statistics_sql(
        "analytics.events", experiment="test_id", segment=["country"], arm="variant", outcome="converted",
        outcome_type="boolean", dialect=dialect,
    )  # fmt: skip
    parsed = sqlglot.parse_one(sql, read=dialect)
    assert parsed.find(sqlglot.exp.Group) is not None
    assert {"trials", "successes", "bad_outcomes"} <= {s.alias_or_name for s in parsed.selects}
    assert "events" in sql and "test_id" in sql


def test_the_warehouse_sql_run_by_duckdb_gives_the_cells_abpool_computes(seed, tmp_path):
    """The generated SQL, run by a second engine on a Parquet file, against abpool's own DuckDB path."""
    import duckdb

    frame = _units(seed)
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    sql = sufficient_statistics_sql("events", experiment="experiment", segment="country", arm="variant",
                                    outcome="converted", dialect="duckdb")  # fmt: skip
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{path}')")
    statistics = con.execute(sql).df()
    assert (statistics["bad_outcomes"] == 0).all()
    got = load_cells(statistics, segment=["experiment", "country"], trials="trials", successes="successes")
    assert got.fingerprint == load_cells(path, segment=["experiment", "country"]).fingerprint


def test_an_ibis_table_on_any_backend_is_a_source(seed):
    frame = _units(seed, experiments=1).drop(columns="experiment")
    backend = ibis.duckdb.connect()
    table = backend.create_table("events", frame)
    got = load_cells(table, segment="country")
    assert got.fingerprint == load_cells(frame, segment="country").fingerprint
    assert got.source == "Ibis table 'memory.main.events'"
    with pytest.raises(InvalidArgumentError, match="with an Ibis table"):
        load_cells(table, table="events")


def test_a_glob_reads_many_parquet_files_as_one_table(seed, tmp_path):
    frame = _units(seed)
    for name, part in frame.groupby("experiment"):
        part.to_parquet(tmp_path / f"{name}.parquet")
    got = load_cells(str(tmp_path / "*.parquet"), segment=["experiment", "country"])
    assert got.fingerprint == load_cells(frame, segment=["experiment", "country"]).fingerprint
    assert got.source.endswith("(3 files)")
    with pytest.raises(InvalidDataError, match="no file matches the pattern"):
        load_cells(str(tmp_path / "*.csv"))
    (tmp_path / "notes.txt").write_text("x\n")
    with pytest.raises(InvalidDataError, match="several or unknown types"):
        load_cells(str(tmp_path / "*"))
    literal = tmp_path / "exp[1].parquet"
    frame.to_parquet(literal)
    assert load_cells(literal, segment=["experiment", "country"]).input_rows == len(frame)


def test_results_are_written_back_into_postgres_and_only_over_abpools_own_table(server, seed, tmp_path):
    frame = _units(seed, experiments=2)
    _load(server, frame, "events")
    done = abpool.analyze_batch(server.url, table="events", out=tmp_path / "a", seed=seed, reports=False,
                                database_table="abpool_results")  # fmt: skip
    assert done.database_table == f"{server.url_without_password} table 'abpool_results'"
    with psycopg.connect(server.url) as con:
        back = pd.DataFrame(
            con.execute(
                "SELECT experiment, arm, trials, prob_best, converged FROM abpool_results ORDER BY experiment, arm"
            ).fetchall(),
            columns=["experiment", "arm", "trials", "prob_best", "converged"],
        )
    expected = done.table[["experiment", "arm", "trials", "prob_best", "converged"]].sort_values(["experiment", "arm"])
    pd.testing.assert_frame_equal(back, expected.reset_index(drop=True), check_dtype=False)
    again = abpool.analyze_batch(server.url, table="events", out=tmp_path / "a", seed=seed, reports=False,
                                 database_table="abpool_results")  # fmt: skip
    assert again.reused == 2
    with pytest.raises(InvalidArgumentError, match=r"'events' .* is not one abpool wrote"):
        abpool.analyze_batch(server.url, table="events", out=tmp_path / "b", seed=seed, database_table="events")
    assert not (tmp_path / "b").exists()  # refused before any fit
    with psycopg.connect(server.url) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == len(frame)


def test_results_are_written_back_into_a_duckdb_file_and_refused_for_a_plain_file(seed, tmp_path):
    import duckdb

    frame = _units(seed, experiments=2)
    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE events AS SELECT * FROM frame")
    done = abpool.analyze_batch(path, table="events", out=tmp_path / "out", seed=seed, reports=False,
                                database_table="abpool_results")  # fmt: skip
    with duckdb.connect(str(path), read_only=True) as con:
        back = con.execute("SELECT * FROM abpool_results").df()
    assert len(back) == len(done.table) and back["status"].eq("ok").all()
    csv = tmp_path / "events.csv"
    frame.to_csv(csv, index=False)
    with pytest.raises(InvalidArgumentError, match=r"not one: read results\.parquet"):
        abpool.analyze_batch(csv, out=tmp_path / "csv", seed=seed, database_table="abpool_results")
    assert not (tmp_path / "csv" / "results.parquet").exists()


def test_the_readmes_postgres_examples_run_against_a_real_server(server, tmp_path):
    """The README's ``sh`` block, run as written, with its example server replaced by the test server."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M) if "postgresql://" in b]
    _load(server, pd.read_csv(root / "examples" / "experiments.csv"), "events")
    _load(server, pd.read_csv(root / "examples" / "revenue.csv"), "orders")
    ran = 0
    for line in block.splitlines():
        if not line.startswith(".venv/bin/abpool "):
            continue
        line = line.replace("postgresql://analyst@db.example.com:5432/shop", server.url_without_password)
        args = shlex.split(line)[1:]
        if "--out" in args:
            args[args.index("--out") + 1] = str(tmp_path / args[args.index("--out") + 1])
        done = _cli(*args, env={"PGPASSWORD": PASSWORD})
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        _secret_free(done.stdout + done.stderr)
        ran += 1
    assert ran == 4
    with psycopg.connect(server.url) as con:
        assert con.execute("SELECT count(DISTINCT experiment) FROM abpool_results").fetchone()[0] == 12


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM events; DROP TABLE events",
        "WITH gone AS (DELETE FROM events RETURNING *) SELECT * FROM gone",
    ],
)
def test_a_query_source_cannot_change_the_database(server, seed, query):
    frame = _units(seed, experiments=1)
    _load(server, frame, "events")
    with pytest.raises(InvalidDataError, match=r"\(the query\) cannot be read"):
        load_cells(server.url, query=query)
    with psycopg.connect(server.url) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == len(frame)


def test_abpool_sql_prints_the_query_and_refuses_an_unknown_dialect_in_one_line():
    done = _cli("sql", "snowflake", "--table", "analytics.events", "--experiment", "test_id", "--arm", "variant",
                "--outcome", "converted", "--outcome-type", "boolean")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(";") and '"analytics"."events"' in done.stdout
    assert "COUNT_IF" in done.stdout  # Snowflake's own spelling of a filtered count
    bad = _cli("sql", "cobol", "--table", "events", "--outcome", "converted")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "dialect 'cobol'" in bad.stderr
    wrong = _cli("sql", "duckdb", "--table", "events", "--outcome", "converted", "--outcome-type", "money")
    assert wrong.returncode == 2 and "outcome type (--outcome-type) must be one of" in wrong.stderr


def _revenue(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 3_000
    bought = rng.random(n) < 0.2
    return pd.DataFrame(
        {
            "country": rng.choice(["Canada", "China"], n),
            "variant": rng.choice(["A", "B", "C"], n),
            # Large offsets: the variance must not come from cancelling sums of squares.
            "revenue": 1e6 + np.where(bought, np.round(rng.lognormal(3.0, 1.0, n), 2), 0.0),
        }
    )


@pytest.mark.parametrize("cap", [None, 0.9])
def test_a_continuous_metric_is_reduced_in_postgres_to_the_moments_of_the_file_path(server, seed, cap):
    from abpool.data import read_moments as load_moments

    frame = _revenue(seed)
    _load(server, frame, "orders")
    got = load_moments(server.url, table="orders", value="revenue", segment="country", cap=cap)
    truth = load_moments(frame, value="revenue", segment="country", cap=cap)
    # The database's sums are plain, DuckDB's compensated: the moments agree to ~1e-14, not bit for bit.
    assert got.table[["country", "arm", "n"]].equals(truth.table[["country", "arm", "n"]])
    np.testing.assert_allclose(got.table[["mean", "m2"]], truth.table[["mean", "m2"]], rtol=1e-12, atol=0)
    assert (got.form, got.value_column, got.input_rows) == ("units", "revenue", len(frame))
    if cap is not None:
        assert got.cap["value"] == pytest.approx(truth.cap["value"], rel=1e-15)
        assert got.cap["capped"] == truth.cap["capped"] > 0
    one = load_moments(server.url, query="SELECT variant, revenue FROM orders WHERE country = 'China'", cap=cap)
    result = abpool.analyze_means(one, seed=1, cap=cap)
    assert result.summary()["n"].sum() == (frame["country"] == "China").sum()


def test_a_continuous_metric_with_missing_values_is_refused_in_one_line(server, seed):
    from abpool.data import read_moments as load_moments

    frame = _revenue(seed)
    frame.loc[[5, 17], "revenue"] = np.nan
    _load(server, frame, "orders_with_gaps")
    with pytest.raises(InvalidDataError, match=r"^value column 'revenue' has 2 NULL, NaN or infinite values in "):
        load_moments(server.url, table="orders_with_gaps", value="revenue")


def test_a_postgres_batch_experiments_command_refits_it_in_the_server(server, seed, tmp_path):
    _load(server, _units(seed, experiments=2), "events")
    abpool.analyze_batch(server.url, table="events", out=tmp_path / "out", seed=seed, reports=False)
    runs = sorted((tmp_path / "out" / "experiments").glob("*/summary.json"))
    assert len(runs) == 2
    for run in runs:
        saved = json.loads(run.read_text())
        command = saved["provenance"]["reproduce"]
        _secret_free(command)
        assert "--query" in command and "--where" not in command  # the server filters its own rows
        again = _cli(*shlex.split(command)[1:], "--json", env={"PGPASSWORD": PASSWORD})
        assert again.returncode == 0, again.stderr
        refitted = json.loads(again.stdout)
        assert refitted["data"]["fingerprint"] == saved["data"]["fingerprint"]
        assert refitted["summary"] == saved["summary"]


def test_a_continuous_metrics_batch_over_postgres_reads_each_experiment_in_the_server(server, seed, tmp_path):
    frames = [_revenue(seed + e).assign(experiment=f"exp{e + 1}") for e in range(3)]
    frames[2].loc[7, "revenue"] = np.nan  # its own fault: this experiment alone is refused
    table = pd.concat(frames, ignore_index=True)
    _load(server, table, "orders_batch")
    done = abpool.analyze_batch(
        server.url, table="orders_batch", value="revenue", cap=0.9, out=tmp_path / "out", seed=seed, reports=False
    )
    statuses = done.statuses().set_index("experiment")["status"].to_dict()
    assert statuses == {"exp1": "ok", "exp2": "ok", "exp3": "refused"}
    assert "experiment 'exp3': value column 'revenue' has 1 NULL" in done.statuses()["reason"].iloc[2]
    # Each experiment as a file batch reads it: its own cap, the same moments to the database's rounding.
    local = abpool.analyze_batch(
        table.iloc[: sum(len(f) for f in frames[:2])], value="revenue", cap=0.9, out=tmp_path / "local", seed=seed
    )
    for name in ("exp1", "exp2"):
        got, truth = done.result(name).cells, local.result(name).cells
        assert got.cap["value"] == pytest.approx(truth.cap["value"], rel=1e-15)
        assert got.table[["arm", "n", "capped"]].equals(truth.table[["arm", "n", "capped"]])
        np.testing.assert_allclose(got.table[["mean", "m2"]], truth.table[["mean", "m2"]], rtol=1e-12, atol=0)
    saved = json.loads(next((tmp_path / "out" / "experiments").glob("exp1-*/summary.json")).read_text())
    command = saved["provenance"]["reproduce"]
    _secret_free(command)
    assert "--query" in command and "--where" not in command
    again = _cli(*shlex.split(command)[1:], "--json", env={"PGPASSWORD": PASSWORD})
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"] == saved["summary"]


def test_several_metrics_are_read_from_postgres_one_column_each(server, seed, tmp_path):
    frames = []
    for e in range(2):
        frame = _revenue(seed + e)
        frame["purchased"] = (frame["revenue"] > 1e6).astype("int64")
        frames.append(frame.assign(experiment=f"exp{e + 1}"))
    table = pd.concat(frames, ignore_index=True)
    _load(server, table, "shop_metrics")
    options = dict(metrics=["purchased", "revenue"], cap=0.9, seed=seed)
    one = table[table["experiment"] == "exp1"].drop(columns="experiment")
    _load(server, one, "shop_metrics_one")
    got = abpool.analyze_metrics(server.url, table="shop_metrics_one", **options)
    truth = abpool.analyze_metrics(one, **options)
    assert [r.model for r in got.results.values()] == ["variants", "means"]
    pd.testing.assert_frame_equal(got.results["purchased"].summary(), truth.results["purchased"].summary())
    # The database's plain sums against DuckDB's compensated ones: the same to ~1e-12 (see above).
    pd.testing.assert_frame_equal(got.guardrails(), truth.guardrails(), rtol=1e-9)
    done = abpool.analyze_batch(server.url, table="shop_metrics", out=tmp_path / "out", reports=False, **options)
    local = abpool.analyze_batch(table, out=tmp_path / "local", reports=False, **options)
    assert (done.statuses()["status"] == "ok").all() and len(done.statuses()) == 2
    pd.testing.assert_frame_equal(
        done.table.drop(columns="data_fingerprint"), local.table.drop(columns="data_fingerprint"), rtol=1e-9
    )
    # The same one-line refusals as a file's, worded in one place.
    with pytest.raises(InvalidDataError, match=r"^metric column 'nope' not found in postgresql://.*; columns are: "):
        abpool.analyze_metrics(server.url, table="shop_metrics", metrics=["purchased", "nope"])
    with pytest.raises(
        InvalidDataError, match=r"^metric column 'experiment' of postgresql://.* is string, not numbers"
    ):
        abpool.analyze_metrics(server.url, table="shop_metrics", metrics=["purchased", "experiment"])
    with pytest.raises(abpool.InvalidArgumentError, match=r"^a long table's metrics \(metric_column\) are read from"):
        abpool.analyze_metrics(server.url, table="shop_metrics", metrics=["a", "b"], metric_column="experiment")
