"""Where the correlated (LKJ) segments model converges, beside the independent model on the same data.

Writes ``bench/results/correlated.md``. Data: 15 segments (5 countries × 3
platforms), a control and a treatment arm, cells of about ``n`` users (between
n/2 and 3n/2), from 20 to 200,000; each segment's control log-odds ~ N(-1, 0.3²),
its effect correlated with it (ρ = -0.5, sd 0.1). Each data set is fitted with
``correlated=True`` and with the default independent model, both with their
default settings (a failed convergence check refits once, with more tuning and
draws). Reported per fit: whether it converged, after how many attempts, the
divergences, the largest R-hat and the smallest ESS, and the seconds (the
correlated model's first fit of a shape includes compiling it).
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
import pandas as pd

import abpool
from _process import ROOT, write

RESULTS = ROOT / "bench" / "results" / "correlated.md"
SIZES = (20, 200, 2_000, 20_000, 200_000)
SEEDS = tuple(range(1, int(os.environ.get("ABPOOL_BENCH_CORRELATED_SEEDS", 5)) + 1))


def simulate(users: int, seed: int) -> pd.DataFrame:
    """One experiment's cells: 5 countries × 3 platforms, control A and treatment B."""
    rng = np.random.default_rng(seed)
    rows = []
    for country in range(5):
        for platform_ in range(3):
            intercept = rng.normal(-1.0, 0.3)
            # The effect's regression on the intercept for a correlation of -0.5 with sd 0.1.
            effect = 0.1 - 0.5 * 0.1 / 0.3 * (intercept + 1.0) + rng.normal(0.0, 0.1 * np.sqrt(0.75))
            for arm, log_odds in (("A", intercept), ("B", intercept + effect)):
                trials = int(rng.integers(users // 2, 3 * users // 2 + 1))
                rows.append(
                    {
                        "country": f"c{country}",
                        "platform": f"p{platform_}",
                        "arm": arm,
                        "users": trials,
                        "conversions": int(rng.binomial(trials, 1.0 / (1.0 + np.exp(-log_odds)))),
                    }
                )
    return pd.DataFrame(rows)


def main() -> None:
    lines = [
        "# Convergence of the correlated (LKJ) segments model, beside the independent model",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"abpool {abpool.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "15 segments (5 countries × 3 platforms) × 2 arms; default settings of each model; "
        f"seeds {SEEDS[0]}–{SEEDS[-1]} per size.",
        "",
        "| users per cell | model | converged | after a refit | divergences | max R-hat (worst) "
        "| min ESS (worst) | seconds (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    failures: list[str] = []
    for users in SIZES:
        for correlated in (True, False):
            fits = []
            for seed in SEEDS:
                start = time.perf_counter()
                result = abpool.analyze_segments(
                    simulate(users, seed),
                    segment=["country", "platform"],
                    control="A",
                    seed=seed,
                    correlated=correlated,
                    on_unconverged="ignore",
                )
                diagnostics = result.diagnostics
                fits.append((diagnostics, time.perf_counter() - start))
                if not diagnostics.converged:
                    failures.append(f"{users:,} users per cell, seed {seed}: {'; '.join(diagnostics.warnings)}")
            model = "correlated" if correlated else "independent"
            converged = sum(d.converged for d, _ in fits)
            refits = sum(d.attempts > 1 for d, _ in fits)
            lines.append(
                f"| {users:,} | {model} | {converged} of {len(fits)} | {refits} | "
                f"{sum(d.divergences for d, _ in fits)} | {max(d.max_rhat for d, _ in fits):.4f} | "
                f"{min(min(d.min_ess_bulk, d.min_ess_tail) for d, _ in fits):.0f} | "
                f"{float(np.median([s for _, s in fits])):.1f} |"
            )
            print(lines[-1], flush=True)
            write(RESULTS, lines)
    lines += ["", "Fits that did not converge (after the refit):", ""]
    lines += [f"- {failure}" for failure in failures] or ["- none"]
    write(RESULTS, lines)


if __name__ == "__main__":
    main()
