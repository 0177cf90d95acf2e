"""Benchmark of the segments fit: the compiled log density against the paths it replaced, in the same run.

Writes ``bench/results/kernel.md``.

* **PyMC**: abpool as of ``BASELINE`` (the last commit before the kernel),
  unpacked from this repository's history: a PyMC model built and compiled by
  nutpie's numba backend in every new process, ArviZ for R-hat and ESS,
  statsmodels for the classical table.
* **numba kernel**: abpool as of ``NUMBA_KERNEL`` (the last commit before the
  C kernel): the model's log density and gradient written out in numba,
  loaded from numba's on-disk cache in every new process.
* **C kernel**: this checkout: the same density and gradient in C
  (``abpool/segments/_kernel.c``), compiled when abpool is installed; R-hat
  and ESS in numpy.

Every figure is a whole process, measured from outside with ``os.wait4``:
CPU seconds (user + system) and peak resident memory. "Warm" runs follow a
run that filled every cache; the numba kernel's cold figure empties numba's
cache (``NUMBA_CACHE_DIR`` pointed at an empty directory). The C kernel has
no cache: nothing is compiled when it runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import abpool
from _process import abpool_command, baseline_tree, run
from _process import write as write_file
from abpool.segments.density import c_functions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "kernel.md"
BASELINE = "95b6ac1"
NUMBA_KERNEL = "402c40e"

ARTICLE = "country,treated,trials,successes\nCanada,0,100,30\nCanada,1,100,50\nChina,0,100,55\nChina,1,100,60\n"
# Berkeley graduate admissions, fall 1973, by department and sex (Bickel, Hammel and O'Connell 1975).
UCB = textwrap.dedent(
    """\
    department,sex,trials,successes
    A,male,825,512
    A,female,108,89
    B,male,560,353
    B,female,25,17
    C,male,325,120
    C,female,593,202
    D,male,417,138
    D,female,375,131
    E,male,191,53
    E,female,393,94
    F,male,373,22
    F,female,341,24
    """
)

FIT_SCRIPT = """
import sys, time
import numpy as np, pandas as pd
start = time.perf_counter()
import abpool
# A script fitting a large model tunes its process as the CLI does (abpool.tune_process); the path before has none.
getattr(abpool, "tune_process", lambda: None)()
segments, n = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(7)
a = rng.normal(-1.5, 0.4, segments)
b = rng.normal(0.1, 0.2, segments)
p = 1 / (1 + np.exp(-np.column_stack([a, a + b])))
frame = pd.DataFrame({
    "segment": np.repeat([f"s{i:05d}" for i in range(segments)], 2),
    "arm": np.tile(["control", "treatment"], segments),
    "trials": n,
    "successes": rng.binomial(n, p).ravel(),
})
res = abpool.analyze_segments(frame, segment="segment", control="control", seed=1, on_unconverged="ignore")
res.summary()
d = res.diagnostics
print(f"{time.perf_counter() - start:.2f} {d.divergences} {d.max_rhat:.4f} {min(d.min_ess_bulk, d.min_ess_tail):.0f}")
"""


def cli(data: Path, *options: str) -> list[str]:
    return [*abpool_command(), "segments", str(data), *options, "--seed", "1"]


def median_run(args: list[str], env: dict[str, str], repeats: int = 3) -> tuple[float, float]:
    run(args, env)  # fills every cache
    runs = [run(args, env) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[2] for r in runs)


def write(lines: list[str]) -> None:
    write_file(RESULTS, lines)


def main() -> None:
    lines = [
        "# Segments fit: the C kernel vs the numba kernel vs the PyMC model compiled per process",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"abpool {abpool.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"PyMC: abpool at commit {BASELINE}; numba kernel: at commit {NUMBA_KERNEL}; C kernel: this checkout. "
        "Whole processes, one after another on an otherwise idle machine; CPU = user + system.",
        f"The C kernel's loops call libmvec's vector exp and log: {'yes' if c_functions().vector_math else 'no'}.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        envs: dict[str, dict[str, str] | None] = {}
        for name, commit in (("PyMC", BASELINE), ("numba kernel", NUMBA_KERNEL)):
            (workdir / name).mkdir()
            source = baseline_tree(commit, workdir / name)
            envs[name] = {"PYTHONPATH": str(source)} if source else None
        envs["C kernel"] = {}
        (workdir / "article.csv").write_text(ARTICLE)
        (workdir / "ucb.csv").write_text(UCB)
        one_off = [
            (
                "article, 4 cells",
                workdir / "article.csv",
                ["--segment", "country", "--arm", "treated", "--control", "0"],
            ),
            (
                "UCB admissions, 6 × 2",
                workdir / "ucb.csv",
                ["--segment", "department", "--arm", "sex", "--control", "male"],
            ),
        ]
        lines += [
            "## One-off `abpool segments` process, warm caches (median of 3)",
            "",
            "| data | PyMC: CPU s | PyMC: peak MB | numba kernel: CPU s | numba kernel: peak MB "
            "| C kernel: CPU s | C kernel: peak MB | target (C kernel) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for label, data, options in one_off:
            measured = {name: median_run(cli(data, *options), env) for name, env in envs.items() if env is not None}
            cells = [
                f"{measured[name][0]:.2f} | {measured[name][1]:.0f}" if name in measured else "— | —" for name in envs
            ]
            cpu, mb = measured["C kernel"]
            met = "met" if cpu <= 1.5 and mb <= 350 else "NOT met"
            lines.append(f"| {label} | {' | '.join(cells)} | ≤ 1.5 CPU s and ≤ 350 MB: {met} |")
            print(lines[-1], flush=True)
            write(lines)
        _, article, options = one_off[0]
        if envs["numba kernel"] is not None:
            cold_env = {**envs["numba kernel"], "NUMBA_CACHE_DIR": str(workdir / "numba-cold")}
            cold_cpu, cold_wall, cold_mb, _ = run(cli(article, *options), cold_env)
            lines += [
                "",
                f"The numba kernel's first run on a machine (cold cache, article data): {cold_cpu:.1f} CPU s, "
                f"{cold_wall:.1f} s wall, {cold_mb:.0f} MB. The C kernel has no such run: it is compiled when abpool "
                "is installed.",
            ]
        lines += [
            "",
            "## Many segments (first fit in a new process, everything included; each path's default draws and "
            "tuning: PyMC 4 × 1,000 draws after 1,000 tuning steps; the kernels 4 × 1,000 draws after 500, 1,400 "
            "draws at 10,000 segments, target acceptance 0.8 from 2,000 segments; the kernels' script calls "
            "`abpool.tune_process()`)",
            "",
            "| segments × users per cell | path | wall s | CPU s | divergences | max R-hat | min ESS | target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        write(lines)
        for segments, n in ((1_000, 1_000), (10_000, 100)):
            script = [sys.executable, "-c", FIT_SCRIPT, str(segments), str(n)]
            limit = 10.0 if segments == 1_000 else 120.0
            for name, env in envs.items():
                if env is None or (name == "PyMC" and segments > 1_000):
                    continue  # the PyMC path takes far longer than the target at 10,000 segments
                cpu, wall, _, out = run(script, env)
                _, divergences, rhat, ess = out.split()
                met = wall <= limit and int(divergences) == 0 and float(rhat) <= 1.01
                lines.append(
                    f"| {segments:,} × {n:,} | {name} | {wall:.1f} | {cpu:.1f} | {divergences} | {rhat} | {ess} "
                    f"| {'met' if met else 'NOT met'} |"
                )
                print(lines[-1], flush=True)
                write(lines)
    lines += [
        "",
        "Targets: one-off process ≤ 1.5 CPU s and ≤ 350 MB; 1,000 × 1,000 first fit ≤ 10 s; 10,000 × 100 < 2 "
        "minutes with 0 divergences and R-hat ≤ 1.01. The PyMC path is not run at 10,000 segments: it takes far "
        "longer than the target.",
    ]
    write(lines)


if __name__ == "__main__":
    main()
