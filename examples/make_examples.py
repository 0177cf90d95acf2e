"""Regenerate the example data files used by the README (and executed by the test suite).

Run from the repository root: ``.venv/bin/python examples/make_examples.py``. The files are
committed, so nothing needs to run this; it documents where they come from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from abpool.datasets import make_dataframe

HERE = Path(__file__).parent


def main() -> None:
    # The article's four-variant test, as aggregated cells.
    pd.DataFrame({"variant": list("ABCD"), "trials": [100] * 4, "successes": [30, 50, 55, 60]}).to_csv(
        HERE / "results.csv", index=False
    )
    # The article's Canada/China experiment, one row per user (its make_dataframe).
    make_dataframe(100, [30, 50, 55, 60]).to_csv(HERE / "users.csv", index=False)
    # A four-variant test as unit rows in Parquet: 2,000 users per variant, shuffled.
    rng = np.random.default_rng(2016)
    rates = {"A": 0.10, "B": 0.11, "C": 0.12, "D": 0.105}
    frames = [pd.DataFrame({"variant": name, "converted": rng.random(2_000) < rate}) for name, rate in rates.items()]
    units = pd.concat(frames, ignore_index=True)
    units = units.iloc[rng.permutation(len(units))].reset_index(drop=True)
    units.to_parquet(HERE / "users.parquet", index=False)
    # Country × platform cells with a control (A) and a treatment (B), users split 50/50 at random.
    rows = []
    for country, base in {"CA": -1.2, "CN": -0.9, "US": -1.0}.items():
        for platform, shift in {"ios": 0.1, "web": -0.1}.items():
            users = int(rng.integers(4_000, 8_000))
            control_users = int(rng.binomial(users, 0.5))
            for arm, effect in {"A": 0.0, "B": 0.12}.items():
                trials = control_users if arm == "A" else users - control_users
                rate = 1.0 / (1.0 + np.exp(-(base + shift + effect + rng.normal(0, 0.05))))
                rows.append(
                    {
                        "country": country,
                        "platform": platform,
                        "arm": arm,
                        "users": trials,
                        "conversions": int(rng.binomial(trials, rate)),
                    }
                )
    pd.DataFrame(rows).to_csv(HERE / "cells.csv", index=False)
    experiments()
    revenue()
    shop_experiments()


def experiments() -> None:
    """A results table of 12 experiments (the sufficient statistics a warehouse query gives): 2 or 3 arms each."""
    rng = np.random.default_rng(2026)
    rows = []
    for number in range(1, 13):
        base = rng.uniform(0.03, 0.15)
        arms = ["control", "treatment"] if number % 4 else ["control", "treatment_a", "treatment_b"]
        # Users assigned at random, in equal shares: no sample ratio mismatch.
        split = rng.multinomial(int(rng.integers(4_000, 40_000)), [1 / len(arms)] * len(arms))
        for arm, trials in zip(arms, split, strict=True):
            trials = int(trials)
            lift = 0.0 if arm == "control" else rng.normal(0.0, 0.08)
            successes = int(rng.binomial(trials, min(base * (1.0 + lift), 0.99)))
            rows.append({"experiment": f"exp-{number:02d}", "arm": arm, "trials": trials, "successes": successes})
    pd.DataFrame(rows).to_csv(HERE / "experiments.csv", index=False)


def revenue() -> None:
    """Revenue per user in three arms, one row per user: most users buy nothing, a few spend a lot.

    About 12% of users buy (``purchased``); an order's value is log-normal (median about $25, a long
    right tail, and a handful of very large orders), and arm C lifts order values by 8% but is 6 ms
    slower (``latency_ms``, about 200 ms). Revenue is also written as per-arm sufficient statistics
    (users, mean, sd), the table a warehouse query would return.
    """
    rng = np.random.default_rng(7)
    # Latency from a stream of its own: the revenue draws stay those of the README's figures.
    latency_rng = np.random.default_rng(8)
    frames = []
    for arm, (users, uplift, slower) in {
        "A": (2_000, 1.0, 0.0),
        "B": (2_000, 1.0, 0.0),
        "C": (2_000, 1.08, 6.0),
    }.items():
        bought = rng.random(users) < 0.12
        value = np.round(rng.lognormal(np.log(25.0), 1.1, users) * uplift, 2)
        latency = np.round(latency_rng.gamma(16.0, 12.5, users) + slower, 1)
        frames.append(
            pd.DataFrame(
                {
                    "variant": arm,
                    "revenue": np.where(bought, value, 0.0),
                    "purchased": bought.astype(int),
                    "latency_ms": latency,
                }
            )
        )
    units = pd.concat(frames, ignore_index=True)
    units = units.iloc[rng.permutation(len(units))].reset_index(drop=True)
    units.to_csv(HERE / "revenue.csv", index=False)
    stats = units.groupby("variant")["revenue"].agg(users="count", mean="mean", sd="std").reset_index()
    stats.round({"mean": 6, "sd": 6}).to_csv(HERE / "revenue_stats.csv", index=False)


def shop_experiments() -> None:
    """Four experiments of a shop, one row per user: a conversion, revenue and page latency for each.

    Each has a control and a treatment arm of about 1,500 users. ``checkout`` lifts purchases
    (12% → 14.5%); ``free-shipping`` lifts purchases a little but lowers order values by 15%;
    ``image-cdn`` cuts latency by 10 ms and changes nothing else; ``recommendations`` lifts order
    values by 10% but adds 15 ms of latency.
    """
    rng = np.random.default_rng(11)
    effects = {  # (purchase rate, order value factor, extra latency in ms) of the treatment
        "checkout": (0.145, 1.0, 0.0),
        "free-shipping": (0.13, 0.85, 0.0),
        "image-cdn": (0.12, 1.0, -10.0),
        "recommendations": (0.12, 1.10, 15.0),
    }
    frames = []
    for name, (rate, value_factor, slower) in effects.items():
        for arm, (arm_rate, factor, extra) in {
            "control": (0.12, 1.0, 0.0),
            "treatment": (rate, value_factor, slower),
        }.items():
            users = int(rng.integers(1_400, 1_600))
            bought = rng.random(users) < arm_rate
            value = np.round(rng.lognormal(np.log(25.0), 1.0, users) * factor, 2)
            frames.append(
                pd.DataFrame(
                    {
                        "experiment": name,
                        "arm": arm,
                        "purchased": bought.astype(int),
                        "revenue": np.where(bought, value, 0.0),
                        "latency_ms": np.round(rng.gamma(16.0, 12.5, users) + extra, 1),
                    }
                )
            )
    pd.concat(frames, ignore_index=True).to_parquet(HERE / "shop_experiments.parquet", index=False)


if __name__ == "__main__":
    main()
