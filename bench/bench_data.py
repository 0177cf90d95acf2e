"""Benchmark of the data layer at warehouse scale: abpool's aggregation against a plain DuckDB GROUP BY.

Writes ``bench/results/data.md``. The data: 20 million unit rows (4 arms × 50
countries, a 0/1 outcome) in one Parquet file, and the same rows as CSV.
Each figure is the median of 3 processes after one warm-up run: the seconds
the aggregation took (timed inside, after the imports) and the process's
peak resident memory (``os.wait4``). The
baseline is a plain DuckDB ``GROUP BY`` of the same file in the same run;
"before" is abpool as of ``BASELINE`` (the source copied into a temporary
table with row numbers before aggregating).

Target: within 2× of the plain GROUP BY in time and in peak memory.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

import abpool
from _process import ROOT, baseline_tree, run, write

RESULTS = ROOT / "bench" / "results" / "data.md"
BASELINE = "e99abfc"
ROWS = int(os.environ.get("ABPOOL_BENCH_ROWS", 20_000_000))

# Each script prints its cell count and the seconds its aggregation took, timed inside the process after its
# imports (the interpreter and library start-up are the same whatever the file's size).
PLAIN = """
import sys, time, duckdb
reader = "read_parquet" if sys.argv[1].endswith(".parquet") else "read_csv"
keys = ", ".join(sys.argv[2:])
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.execute(
    f"SELECT {keys}, count(*) AS trials, sum(converted) AS successes FROM {reader}('{sys.argv[1]}') GROUP BY {keys}"
).fetchall()
print(len(rows), time.perf_counter() - start)
"""
OURS = """
import sys, time
from abpool.data import load_cells
segment = sys.argv[2:] or None
start = time.perf_counter()
cells = load_cells(sys.argv[1], arm="variant", outcome="converted", segment=segment)
print(len(cells.table), time.perf_counter() - start)
"""


def make_data(directory: Path) -> tuple[Path, Path]:
    """20 million users: variant A–D, one of 50 countries, converted 0/1 at about 10%."""
    parquet, csv = directory / "users.parquet", directory / "users.csv"
    con = duckdb.connect()
    rows = (
        f"SELECT chr(65 + (i % 4)::INTEGER) AS variant, 'country_' || ((i // 4) % 50) AS country, "
        f"(hash(i) % 100 < 10)::INTEGER AS converted FROM range({ROWS}) t(i)"
    )
    con.execute(f"COPY ({rows}) TO '{parquet}' (FORMAT parquet)")
    con.execute(f"COPY ({rows}) TO '{csv}' (FORMAT csv, HEADER)")
    return parquet, csv


def measure(code: str, args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Medians of 3 runs after a warm-up (the file in the page cache): aggregation s, process wall s, peak MB, cells."""
    command = [sys.executable, "-c", code, *args]
    run(command, env)
    runs = [run(command, env) for _ in range(3)]
    # The last two words: older abpool let DuckDB draw its progress bar on standard output first.
    inside = [float(r[3].split()[-1]) for r in runs]
    cells = runs[0][3].split()[-2]
    return (
        statistics.median(inside),
        statistics.median(r[1] for r in runs),
        statistics.median(r[2] for r in runs),
        cells,
    )


def main() -> None:
    lines = [
        "# Data layer: abpool's aggregation vs a plain DuckDB GROUP BY",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"DuckDB {duckdb.__version__}, abpool {abpool.__version__}; "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Data: {ROWS:,} unit rows (4 arms × 50 countries, 0/1 outcome). Median of 3 processes after a warm-up: "
        "seconds of the aggregation (timed inside the process, after its imports), peak resident MB of the whole "
        "process, and the whole process's wall seconds. Ratios are against the plain GROUP BY in the same run.",
        f"Before: abpool at commit {BASELINE} (the source copied into a temporary table with row numbers first).",
        "",
        "| file | grouped by | plain GROUP BY: s | plain: MB | abpool: s | abpool: MB | time ratio | memory ratio "
        "| abpool process: s | before: s | before: MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        parquet, csv = make_data(workdir)
        (workdir / "baseline").mkdir()
        old_source = baseline_tree(BASELINE, workdir / "baseline")
        old_env = {"PYTHONPATH": str(old_source)} if old_source else None
        for path in (parquet, csv):
            for keys in (["variant"], ["country", "variant"]):
                plain_s, _, plain_mb, plain_cells = measure(PLAIN, [str(path), *keys])
                ours_s, ours_wall, ours_mb, ours_cells = measure(OURS, [str(path), *keys[:-1]])
                if plain_cells != ours_cells:
                    raise RuntimeError(f"cell counts differ: plain {plain_cells}, abpool {ours_cells}")
                before = "— | —"
                if old_env:
                    before_s, _, before_mb, _ = measure(OURS, [str(path), *keys[:-1]], old_env)
                    before = f"{before_s:.2f} | {before_mb:.0f}"
                lines.append(
                    f"| {path.suffix[1:]} | {' × '.join(keys)} | {plain_s:.2f} | {plain_mb:.0f} | {ours_s:.2f} | "
                    f"{ours_mb:.0f} | {ours_s / plain_s:.2f}× | {ours_mb / plain_mb:.2f}× | {ours_wall:.2f} "
                    f"| {before} |"
                )
                print(lines[-1], flush=True)
                write(RESULTS, lines)
    lines += ["", "Target: abpool within 2× of the plain GROUP BY in time and in peak memory."]
    write(RESULTS, lines)


if __name__ == "__main__":
    main()
