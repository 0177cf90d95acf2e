"""Benchmark of ``abpool batch``: many experiments in-process, on a process pool and on a Dask LocalCluster.

Writes ``bench/results/batch.md``. Each row is one whole ``abpool batch`` process (``--no-reports``: every
experiment's run is still saved, unless the row says ``--no-runs``), measured from outside (``os.wait4``): wall
seconds, CPU seconds of the process and its workers (on a shared machine, CPU seconds over the cores bound what the
wall time would be on an idle one), peak resident memory of the main process (workers are separate processes), and
experiments fitted per second.

Targets on this 2-core machine: 1,000 variant experiments (4 arms each) in under 20 s; segments experiments
(8 segments × 2 arms) at 0.5 s each or less after the first compile of a shape.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import abpool
from _process import ROOT, abpool_command, run, write

RESULTS = ROOT / "bench" / "results" / "batch.md"
VARIANT_EXPERIMENTS = int(os.environ.get("ABPOOL_BENCH_VARIANT_EXPERIMENTS", 1_000))
SEGMENT_EXPERIMENTS = int(os.environ.get("ABPOOL_BENCH_SEGMENT_EXPERIMENTS", 200))
MEANS_EXPERIMENTS = int(os.environ.get("ABPOOL_BENCH_MEANS_EXPERIMENTS", 500))


def variants_table(path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [
        {"experiment": f"v{e:04d}", "arm": arm, "trials": 5_000, "successes": int(rng.binomial(5_000, 0.1))}
        for e in range(VARIANT_EXPERIMENTS)
        for arm in "ABCD"
    ]
    pd.DataFrame(rows).to_parquet(path, index=False)


def segments_table(path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = []
    for e in range(SEGMENT_EXPERIMENTS):
        for s in range(8):
            base = rng.normal(-2.0, 0.3)
            for arm, effect in (("control", 0.0), ("treatment", rng.normal(0.05, 0.05))):
                rate = 1 / (1 + np.exp(-(base + effect)))
                rows.append(
                    {
                        "experiment": f"s{e:04d}",
                        "segment": f"seg{s}",
                        "arm": arm,
                        "trials": 2_000,
                        "successes": int(rng.binomial(2_000, rate)),
                    }
                )
    pd.DataFrame(rows).to_parquet(path, index=False)


def means_table(path: Path) -> None:
    """Unit rows of a continuous metric: 600 users per experiment, revenue zero for nine in ten."""
    rng = np.random.default_rng(3)
    users = 600
    rows = MEANS_EXPERIMENTS * users
    pd.DataFrame(
        {
            "experiment": np.repeat([f"m{e:04d}" for e in range(MEANS_EXPERIMENTS)], users),
            "arm": np.tile(["control", "treatment"], rows // 2),
            "revenue": rng.lognormal(3.0, 1.0, rows) * rng.binomial(1, 0.1, rows),
        }
    ).to_parquet(path, index=False)


def batch(data: Path, out: Path, *options: str) -> tuple[float, float, float]:
    """Run one ``abpool batch`` process: its wall seconds, CPU seconds (with its workers') and peak MB."""
    args = [*abpool_command(), "batch", str(data), "--out", str(out), "--seed", "1", "--no-reports"]
    # Exit code 1 (some experiment did not converge) still fitted and saved every experiment.
    cpu, wall, peak, _ = run([*args, *options], allowed=(0, 1))
    return wall, cpu, peak


def main() -> None:
    lines = [
        "# `abpool batch`: in-process, process pool, Dask LocalCluster",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"abpool {abpool.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "Whole `abpool batch --no-reports` processes (each experiment's run saved), fresh output directory.",
        "",
        "| experiments | engine | wall s | CPU s | peak MB (main process) | experiments per s | s per experiment |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        variants_table(workdir / "variants.parquet")
        segments_table(workdir / "segments.parquet")
        means_table(workdir / "means.parquet")
        cases = [
            (f"{VARIANT_EXPERIMENTS:,} variants (4 arms)", workdir / "variants.parquet", VARIANT_EXPERIMENTS, []),
            (
                f"{SEGMENT_EXPERIMENTS:,} segments (8 × 2)",
                workdir / "segments.parquet",
                SEGMENT_EXPERIMENTS,
                ["--segment", "segment", "--control", "control"],
            ),
            # Each experiment is read in a pass of its own (its cap is its own quantile).
            (
                f"{MEANS_EXPERIMENTS:,} means (2 arms × 300 users, --cap 0.99)",
                workdir / "means.parquet",
                MEANS_EXPERIMENTS,
                ["--value", "revenue", "--cap", "0.99", "--control", "control"],
            ),
        ]
        # A count of 0 (ABPOOL_BENCH_..._EXPERIMENTS=0) leaves that model out: a quick run of the other.
        cases = [case for case in cases if case[2] > 0]
        engines = [
            ("in-process", []),
            ("pool, 2 workers", ["--workers", "2"]),
            ("Dask LocalCluster, 2 workers", ["--dask", "local", "--workers", "2"]),
            # Results table, index and records only: no draws or JSON per experiment.
            ("in-process, --no-runs", ["--no-runs"]),
            ("pool, 2 workers, --no-runs", ["--workers", "2", "--no-runs"]),
        ]
        for case, (label, data, count, options) in enumerate(cases):
            for number, (engine, flags) in enumerate(engines):
                wall, cpu, peak = batch(data, workdir / f"out-{case}-{number}", *options, *flags)
                lines.append(
                    f"| {label} | {engine} | {wall:.1f} | {cpu:.1f} | {peak:.0f} | {count / wall:.1f} "
                    f"| {wall / count:.3f} |"
                )
                print(lines[-1], flush=True)
                write(RESULTS, lines)
    lines += [
        "",
        "Targets: 1,000 variant experiments in under 20 s; segments experiments at ≤ 0.5 s each after the first "
        "compile of a shape.",
    ]
    write(RESULTS, lines)


if __name__ == "__main__":
    main()
