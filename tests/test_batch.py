"""Many experiments at once: failure isolation, resuming, the same numbers on every engine, the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import abpool
from abpool.batch import analyze_batch
from abpool.errors import InvalidArgumentError, InvalidDataError

ABPOOL = [sys.executable, "-m", "abpool"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=600)


def unit_rows(path, experiments: int = 12, users: int = 600) -> None:
    """Unit rows of many experiments; exp003 has an outcome of 2 at its row 101, exp005 a single arm."""
    con = duckdb.connect()
    con.execute(
        f"""COPY (
        SELECT 'exp' || lpad(CAST(e AS VARCHAR), 3, '0') AS experiment,
               CASE WHEN e = 5 THEN 'A' ELSE chr(65 + (i % 3)::INTEGER) END AS variant,
               CASE WHEN e = 3 AND i = 100 THEN 2 ELSE (hash(e * 100000 + i) % 100 < 10 + 3 * (i % 3))::INTEGER END
                 AS converted
        FROM range({experiments}) a(e), range({users}) b(i)) TO '{path}' (FORMAT parquet)"""
    )


def cells_table(experiments: int = 4) -> pd.DataFrame:
    rows = []
    for e in range(experiments):
        for k, arm in enumerate(["A", "B", "C"]):
            rows.append({"experiment": f"e{e}", "arm": arm, "trials": 1_000, "successes": 100 + 10 * k + e})
    return pd.DataFrame(rows)


def test_bad_experiments_are_refused_and_the_others_complete(tmp_path) -> None:
    unit_rows(tmp_path / "users.parquet")
    proc = run("batch", tmp_path / "users.parquet", "--out", tmp_path / "out", "--seed", "1", "--no-reports")
    assert proc.returncode == 1, proc.stderr
    assert "12 experiments: 10 ok, 2 refused" in proc.stdout
    refused = [line for line in proc.stderr.splitlines() if line.startswith("abpool: refused")]
    assert len(refused) == 2
    # exp003's bad value is its 101st row: rows 1–1,800 are exp000–exp002.
    assert "exp003" in refused[0] and "row 1901 of" in refused[0] and "has '2'" in refused[0]
    assert "exp005" in refused[1] and "only one arm ('A')" in refused[1]
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert table.groupby("experiment")["status"].first().value_counts().to_dict() == {"ok": 10, "refused": 2}
    fitted = table[table["status"] == "ok"]
    assert len(fitted) == 30 and set(fitted["arm"]) == {"A", "B", "C"} and fitted["seed"].nunique() == 10
    assert table.loc[table["experiment"] == "exp003", "reason"].str.contains("row 1901").all()
    index = (tmp_path / "out" / "index.html").read_text()
    assert index.count("<tr>") == 13 and "exp005" in index and "refused" in index
    assert "<a href" not in index  # --no-reports: no report to link to


def test_rerun_refits_only_what_changed_and_resumes_after_a_kill(tmp_path) -> None:
    table = cells_table(4)
    done = analyze_batch(table, out=tmp_path, seed=3, reports=False)
    assert (done.fitted, done.reused, done.exit_code) == (4, 0, 0)
    again = analyze_batch(table, out=tmp_path, seed=3, reports=False)
    assert (again.fitted, again.reused) == (0, 4)
    pd.testing.assert_frame_equal(again.table, done.table)
    changed = table.copy()
    changed.loc[changed["experiment"] == "e2", "successes"] += 5
    assert analyze_batch(changed, out=tmp_path, seed=3, reports=False).fitted == 1
    assert analyze_batch(changed, out=tmp_path, seed=3, reports=False, force=True).fitted == 4
    assert analyze_batch(changed, out=tmp_path, seed=4, reports=False).fitted == 4  # other settings: refit

    fresh = tmp_path / "killed"
    seen = []

    def interrupt(record: dict) -> None:
        seen.append(record["experiment"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze_batch(table, out=fresh, seed=3, reports=False, progress=interrupt)
    # What a save killed halfway leaves beside the runs: its new run, or the old one it was replacing.
    leftovers = [fresh / "experiments" / ".abpool-e3-0a1b.new-x7q", fresh / "experiments" / ".abpool-e1-9f8e.old-k2p"]
    for leftover in leftovers:
        (leftover / "run").mkdir(parents=True)
    resumed = analyze_batch(table, out=fresh, seed=3, reports=False)
    assert (resumed.fitted, resumed.reused) == (2, 2)
    pd.testing.assert_frame_equal(resumed.table, done.table)
    assert not any(leftover.exists() for leftover in leftovers)
    assert not [p for p in (fresh / "experiments").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_every_engine_gives_the_same_numbers(tmp_path) -> None:
    table = cells_table(4)
    here = analyze_batch(table, out=tmp_path / "here", seed=5, reports=False)
    pool = analyze_batch(table, out=tmp_path / "pool", seed=5, reports=False, engine="pool", workers=2)
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    dask = analyze_batch(table, out=tmp_path / "dask", seed=5, reports=False, engine="dask", workers=2)
    for other in (pool, dask):
        assert other.fitted == 4
        pd.testing.assert_frame_equal(other.table, here.table)


def test_a_segments_batch_and_a_saved_result(tmp_path) -> None:
    frame = abpool.datasets.make_dataframe(100, [30, 50, 55, 60])
    table = pd.concat([frame.assign(experiment="first"), frame.assign(experiment="second")], ignore_index=True)
    done = analyze_batch(
        table, out=tmp_path, segment="country", arm="treated", outcome="success", control="0", seed=2, draws=500
    )
    assert done.statuses()["status"].tolist() == ["ok", "ok"]
    assert set(done.table["segment"]) == {"Canada", "China"} and (done.table["model"] == "segments").all()
    first = done.result("first")
    assert first.prob_beats_control(segment="Canada") > 0.95
    links = re.findall(r'<a href="([^"]+)"', (tmp_path / "index.html").read_text())
    assert len(links) == 2 and all((tmp_path / link).is_file() for link in links)
    record = json.loads(next((tmp_path / "experiments").glob("first-*.json")).read_text())
    assert record["status"] == "ok" and record["data_fingerprint"] == first.cells.fingerprint


def test_an_unusable_table_exits_2_with_one_line(tmp_path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text("test,arm,trials,successes\nt1,A,100,10\n,B,100,12\n")
    proc = run("batch", path, "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"abpool: error: experiment column 'test' is empty at row 2 of {path}; every row needs its experiment"
    )
    proc = run("batch", path, "--out", tmp_path / "out", "--experiment", "exp")
    assert proc.returncode == 2 and "experiment column 'exp' (given by --experiment) not found" in proc.stderr
    with pytest.raises(InvalidArgumentError, match="engine must be one of process, pool, dask"):
        analyze_batch(cells_table(1), engine="spark")
    with pytest.raises(InvalidArgumentError, match="correlated is not an option of the variants model"):
        analyze_batch(cells_table(1), correlated=True)
    with pytest.raises(InvalidDataError, match="no experiment column"):
        analyze_batch(cells_table(1).drop(columns="experiment"))


def test_a_batch_from_a_duckdb_query_isolates_a_bad_experiment(tmp_path) -> None:
    unit_rows(tmp_path / "users.parquet", experiments=6, users=400)
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{tmp_path / 'users.parquet'}')")
    proc = run(
        "batch",
        database,
        "--query",
        "SELECT * FROM events WHERE experiment <> 'exp005'",
        "--out",
        tmp_path / "out",
        "--seed",
        "2",
        "--no-reports",
    )
    assert proc.returncode == 1, proc.stderr
    assert "5 experiments: 4 ok, 1 refused" in proc.stdout
    (line,) = [line for line in proc.stderr.splitlines() if "refused" in line]
    assert "exp003" in line and "row 1301 of" in line and "(the query)" in line


def test_a_rerun_without_a_seed_resumes_with_the_first_runs_seed(tmp_path) -> None:
    table = cells_table(3)
    first = analyze_batch(table, out=tmp_path, reports=False)
    again = analyze_batch(table, out=tmp_path, reports=False)
    assert (again.fitted, again.reused) == (0, 3)
    pd.testing.assert_frame_equal(again.table, first.table)
    recorded = json.loads((tmp_path / "batch.json").read_text())["seed"]
    assert analyze_batch(table, out=tmp_path, reports=False, seed=recorded).fitted == 0
    assert analyze_batch(table, out=tmp_path, reports=False, seed=recorded + 1).fitted == 3


def test_without_runs_the_numbers_are_the_same_and_a_result_is_refitted_on_demand(tmp_path) -> None:
    table = cells_table(experiments=3)
    saved = analyze_batch(table, experiment="experiment", out=tmp_path / "runs", seed=5, reports=False)
    lean = analyze_batch(table, experiment="experiment", out=tmp_path / "lean", seed=5, runs=False)
    pd.testing.assert_frame_equal(saved.table, lean.table)
    assert not [p for p in (tmp_path / "lean" / "experiments").iterdir() if p.is_dir()]
    assert "report.html" not in (tmp_path / "lean" / "index.html").read_text(encoding="utf-8")
    loaded, refitted = saved.result("e1"), lean.result("e1")
    pd.testing.assert_frame_equal(loaded.summary(), refitted.summary())
    assert refitted.cells.fingerprint == loaded.cells.fingerprint
    again = analyze_batch(table, experiment="experiment", out=tmp_path / "lean", seed=5, runs=False)
    assert (again.fitted, again.reused) == (0, 3)
    # Asked for the runs later, each experiment is fitted again to write them.
    full = analyze_batch(table, experiment="experiment", out=tmp_path / "lean", seed=5, reports=False)
    assert (full.fitted, full.reused) == (3, 0)
    pd.testing.assert_frame_equal(full.table, saved.table)


def test_a_continuous_metric_batch_fits_each_experiment_with_its_own_cap(tmp_path, seed) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = []
    for name, scale in (("e1", 10.0), ("e2", 100.0)):
        arm = rng.choice(["A", "B", "C"], 900)
        bought = rng.random(900) < 0.3
        frames.append(
            pd.DataFrame({"experiment": name, "variant": arm, "revenue": bought * rng.exponential(scale, 900)})
        )
    # One experiment with a single arm: refused with its reason, the others fitted.
    frames.append(pd.DataFrame({"experiment": "e3", "variant": "A", "revenue": rng.exponential(1.0, 50)}))
    table = pd.concat(frames, ignore_index=True)
    path = tmp_path / "revenue.parquet"
    table.to_parquet(path)
    done = analyze_batch(path, value="revenue", cap=0.95, out=tmp_path / "out", seed=seed, runs=False)
    assert done.statuses()["status"].tolist() == ["ok", "ok", "refused"]
    assert "e3" in done.statuses()["reason"].iloc[2]
    for name in ("e1", "e2"):
        rows = table[table["experiment"] == name].drop(columns="experiment")
        record = next(r for r in done.records if r["experiment"] == name)
        alone = abpool.analyze_means(rows, cap=0.95, seed=int(record["seed"]))
        # Each experiment is capped at its own 95th percentile, not at the whole table's.
        assert alone.cells.cap["value"] == pytest.approx(np.quantile(rows["revenue"], 0.95))
        pd.testing.assert_frame_equal(done.result(name).summary(), alone.summary())
    fitted = done.table[done.table["status"] == "ok"]
    assert {"mean", "mean_ci_low", "n", "observed_mean"} <= set(fitted.columns)
    again = subprocess.run(
        [sys.executable, "-m", "abpool", "batch", str(path), "--value", "revenue", "--cap", "0.95", "--out",
         str(tmp_path / "cli"), "--seed", str(seed), "--no-runs"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 1, again.stderr  # one experiment refused
    assert pd.read_parquet(tmp_path / "cli" / "results.parquet").equals(
        pd.read_parquet(tmp_path / "out" / "results.parquet")
    )
    with pytest.raises(InvalidArgumentError, match=r"^value names a continuous metric"):
        analyze_batch(path, value="revenue", segment="variant", out=tmp_path / "bad")


def metrics_table(seed: int) -> pd.DataFrame:
    """Three experiments with a conversion, revenue and latency per user; e2's revenue is empty at its row 7."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = []
    for name, slower in (("e0", 0.0), ("e1", 8.0), ("e2", 0.0)):
        arm = rng.choice(["A", "B"], 800)
        converted = (rng.random(800) < 0.2).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    "experiment": name,
                    "variant": arm,
                    "converted": converted,
                    "revenue": converted * rng.exponential(20.0, 800),
                    "latency_ms": rng.normal(200.0, 30.0, 800) + slower * (arm == "B"),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.loc[1_606, "revenue"] = float("nan")
    return table


def test_a_batch_of_several_metrics_gives_each_experiment_its_scorecard(tmp_path, seed) -> None:
    from abpool.batch.run import experiment_seed

    table = metrics_table(seed)
    path = tmp_path / "metrics.parquet"
    table.to_parquet(path)
    settings = dict(metrics=["converted", "revenue", "latency_ms"], lower_is_better=["latency_ms"], level=0.3)
    done = analyze_batch(path, out=tmp_path / "out", seed=seed, runs=False, **settings)
    assert done.statuses()["status"].tolist() == ["ok", "ok", "refused"]
    # The reason names the metric and the row of the whole table (1,600 rows of e0 and e1 come first).
    assert re.search(r"experiment 'e2', metric 'revenue': .*row 1607 of", done.statuses()["reason"].iloc[2])
    for name in ("e0", "e1"):
        alone = abpool.analyze_metrics(table[table["experiment"] == name], **settings, seed=experiment_seed(seed, name))
        card = done.result(name)
        pd.testing.assert_frame_equal(card.guardrails(), alone.guardrails())
        assert card.decision() == alone.decision()
        rows = done.table[(done.table["experiment"] == name) & (done.table["role"] == "guardrail")]
        flagged = rows.dropna(subset=["prob_worse"]).set_index(["metric", "arm"])
        expected = alone.guardrails().set_index(["metric", "arm"])
        assert flagged["prob_worse"].to_dict() == expected["prob_worse"].to_dict()
        assert set(done.table.loc[done.table["experiment"] == name, "decision"]) == {alone.decision()["decision"]}
    documented = (Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    section = documented.split("In a batch of several metrics")[1].split("\n\n`status`")[0]
    for names in re.findall(r"^\| (`.+?`) \|", section, flags=re.M):
        assert set(re.findall(r"`(\w+)`", names)) <= set(done.table.columns), names
    fitted = done.table[done.table["status"] == "ok"]
    assert fitted.groupby("metric")["metric_kind"].first().to_dict() == {
        "converted": "binary", "latency_ms": "mean", "revenue": "mean"
    }  # fmt: skip
    # The same metrics from a long table give the same numbers.
    long = table.melt(id_vars=["experiment", "variant"], var_name="metric", value_name="value")
    long.to_parquet(tmp_path / "long.parquet")
    from_long = analyze_batch(
        tmp_path / "long.parquet", metric_column="metric", out=tmp_path / "long", seed=seed, runs=False, **settings
    )
    numbers = ["experiment", "metric", "arm", "prob_beats_control", "lift", "prob_worse", "decision"]
    pd.testing.assert_frame_equal(from_long.table[numbers], done.table[numbers])
    # A rerun reuses every scorecard; a change to one metric of one experiment refits that experiment only.
    assert analyze_batch(path, out=tmp_path / "out", seed=seed, runs=False, **settings).reused == 2
    table.loc[5, "latency_ms"] += 50.0
    table.to_parquet(path)
    again = analyze_batch(path, out=tmp_path / "out", seed=seed, runs=False, **settings)
    assert (again.fitted, again.reused) == (1, 1)
    assert next(r for r in again.records if r["experiment"] == "e0").get("reused") is None


def test_the_batch_command_writes_a_scorecard_per_experiment(tmp_path, seed) -> None:
    path = tmp_path / "metrics.csv"
    metrics_table(seed).to_csv(path, index=False)
    base = ["batch", path, "--metric", "converted", "--metric", "revenue", "--metric", "latency_ms"]
    proc = run(*base, "--lower-is-better", "latency_ms", "--out", tmp_path / "out", "--seed", seed)
    assert proc.returncode == 1, proc.stderr  # e2 is refused
    assert "3 experiments: 2 ok, 1 refused" in proc.stdout
    assert "experiment 'e2', metric 'revenue'" in proc.stderr
    out = tmp_path / "out"
    table = pd.read_parquet(out / "results.parquet")
    assert {"metric", "role", "prob_worse", "guardrail_flagged", "blocking_guardrails"} <= set(table.columns)
    assert list((out / "experiments").glob("e0-*/report.html"))
    assert "several metrics" in (out / "index.html").read_text()
    summary = json.loads(next((out / "experiments").glob("e1-*/summary.json")).read_text())
    assert summary["primary"] == "converted" and list(summary["metrics"]) == ["converted", "revenue", "latency_ms"]
    for bad, message in (
        (["--prior", "flat"], "prior is not a setting of a batch of several metrics"),
        (["--margin", "revenue"], "--margin must be COLUMN=VALUE"),
        (["--lower-is-better", "converted"], "margins and lower_is_better name guardrails"),
        (["--segment", "variant"], "leave out segment"),
    ):
        proc = run(*base, *bad, "--out", tmp_path / "bad")
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    proc = run("batch", path, "--level", "0.3", "--out", tmp_path / "bad")
    assert proc.returncode == 2 and "give metrics" in proc.stderr


def test_the_readme_shop_scorecards_say_what_the_batch_finds(tmp_path) -> None:
    root = Path(__file__).resolve().parents[1]
    done = analyze_batch(
        root / "examples" / "shop_experiments.parquet",
        metrics=["purchased", "revenue", "latency_ms"],
        lower_is_better=["latency_ms"],
        cap=0.99,
        out=tmp_path / "out",
        seed=1,
        runs=False,
    )
    treatment = done.table[done.table["arm"] == "treatment"]
    decisions = treatment.groupby("experiment")["decision"].first().to_dict()
    assert decisions == {
        "checkout": "ship", "free-shipping": "keep running", "image-cdn": "hold", "recommendations": "keep running"
    }  # fmt: skip
    flagged = treatment[treatment["guardrail_flagged"].fillna(False).astype(bool)]
    assert flagged.groupby("experiment")["metric"].apply(sorted).to_dict() == {
        "free-shipping": ["latency_ms", "revenue"], "image-cdn": ["revenue"], "recommendations": ["latency_ms"]
    }  # fmt: skip
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "`checkout`: ship treatment. `image-cdn`: hold treatment" in readme


def test_workers_compile_directories_are_private_and_removed_when_they_end(tmp_path) -> None:
    # PyTensor's compile directory, one per process (pymc#7819); a batch must not leave them in TMPDIR.
    script = (
        "import os\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from abpool.batch.run import _private_compile_directory\n"
        "def directory(_):\n"
        "    _private_compile_directory()\n"
        "    path = os.environ['PYTENSOR_FLAGS'].rsplit('compiledir=', 1)[1]\n"
        "    assert os.path.isdir(path)\n"
        "    return path\n"
        "if __name__ == '__main__':\n"
        "    main = directory(0)\n"
        "    with ProcessPoolExecutor(2) as pool:\n"
        "        workers = set(pool.map(directory, range(8)))\n"
        "    assert main not in workers and len(workers) >= 1, (main, workers)\n"
        "    print(len(workers) + 1)\n"
    )
    (tmp_path / "work").mkdir()
    program = tmp_path / "pool.py"
    program.write_text(script)
    env = {**os.environ, "TMPDIR": str(tmp_path / "work")}
    proc = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 2
    assert list((tmp_path / "work").iterdir()) == []


def test_a_batch_without_saved_runs_never_loads_xarray(tmp_path) -> None:
    # Building an xarray object imports Dask when it is installed: a second per process for nothing.
    code = (
        "import sys, pandas as pd\n"
        "from abpool.batch import analyze_batch\n"
        f"table = pd.read_parquet({str(tmp_path / 'cells.parquet')!r})\n"
        f"done = analyze_batch(table, out={str(tmp_path / 'out')!r}, seed=1, runs=False)\n"
        "assert (done.statuses()['status'] == 'ok').all()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('xarray', 'dask')))"
    )
    cells_table(3).to_parquet(tmp_path / "cells.parquet")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
