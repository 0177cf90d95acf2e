"""Tables, JSON and figures of calibration studies (see :mod:`abpool.calibration`).

Examples
--------
>>> from abpool.calibration import VariantsDesign, run_studies
>>> results = run_studies([VariantsDesign(arms=2, trials=50, base_rate=0.5)], experiments=5, seed=3, workers=1)
>>> payload = study_payload(results)
>>> sorted(payload)[:3], payload["settings"]["arms"]
(['abpool_version', 'definitions', 'rules'], [2])
>>> study_table(results)[["arms", "rule"]].values.tolist()[:2]
[[2, 'bayes_p95'], [2, 'bonferroni']]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abpool._version import __version__
from abpool.calibration.study import MC_LEVEL, StudyResult
from abpool.io import atomic_write, to_jsonable, write_json

DEFINITIONS = {
    "false_claim": "a claim 'i beats j' when truly rate_i <= rate_j (equal rates, or the opposite sign)",
    "family_wise_error": "share of experiments with at least one false claim",
    "false_discovery_rate": "mean over experiments of false claims / claims (0 without claims)",
    "power": "mean share of truly different pairs claimed with the right sign (null for A/A studies)",
    "wrong_sign_rate": "share of experiments with a claim opposite to a true difference (null for A/A studies)",
    "any_claim_rate": "share of experiments with at least one claim",
    "mean_claims": "mean number of claims per experiment",
    "_ci": f"{MC_LEVEL:.0%} Monte Carlo interval (Wilson score; conservative for means of shares)",
}

METRICS = ("family_wise_error", "false_discovery_rate", "power", "wrong_sign_rate")

STEM = "calibration"


def study_payload(
    results: Sequence[StudyResult], *, workers: int | None = None, elapsed: float | None = None
) -> dict[str, Any]:
    """One JSON-ready object: ``settings``, ``definitions``, ``studies`` and ``rules``.

    ``rules`` has one record per (design, rule); each names its ``arms`` (or
    ``segments`` for a segments study), and ``settings`` lists them.
    """
    size = results[0].design.size_key
    designs = [r.design.describe() for r in results]
    shared = {
        key: value
        for key, value in designs[0].items()
        if key not in (size, "true_rates") and all(d.get(key) == value for d in designs)
    }
    first = results[0]
    settings = {
        size: [d.get(size) for d in designs],
        **shared,
        "experiments": first.experiments,
        "seed": first.seed,
        **first.settings.describe(),
        "monte_carlo_interval": f"{MC_LEVEL:.0%} Wilson score interval",
    }
    payload = {
        "abpool_version": __version__,
        "settings": settings,
        "definitions": DEFINITIONS,
        "studies": [r.describe() for r in results],
        "rules": [record for r in results for record in r.metrics()],
    }
    if workers is not None or elapsed is not None:
        payload["run"] = {"workers": workers, "elapsed_seconds": None if elapsed is None else round(elapsed, 2)}
    return to_jsonable(payload)


def study_table(results: Sequence[StudyResult]) -> pd.DataFrame:
    """One row per (design, rule); intervals split into ``*_ci_low`` / ``*_ci_high`` columns."""
    rows = []
    for result in results:
        for record in result.metrics():
            row = {}
            for key, value in record.items():
                if key.endswith("_ci"):
                    low, high = (None, None) if value is None else value
                    row[f"{key}_low"], row[f"{key}_high"] = low, high
                else:
                    row[key] = value
            rows.append(row)
    return pd.DataFrame(rows)


def plot_study(results: Sequence[StudyResult]) -> Any:
    """Error rates (and power, with a true effect) against the number of arms (or segments), one line per rule.

    Returns a :class:`matplotlib.figure.Figure` drawn with the Agg backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = study_table(results)
    panels = ["family_wise_error", "false_discovery_rate"]
    if table["power"].notna().any():
        panels.append("power")
    titles = {
        "family_wise_error": "Family-wise error rate",
        "false_discovery_rate": "False discovery rate",
        "power": "Power (per true difference)",
    }
    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    alpha = results[0].settings.alpha
    size = results[0].design.size_key
    arms = sorted(table[size].unique())
    for ax, metric in zip(axes, panels, strict=True):
        rules = list(dict.fromkeys(table["rule"]))
        for k, (rule, group) in enumerate(table.groupby("rule", sort=False)):
            group = group.sort_values(size)
            # Rules often coincide; a small horizontal dodge keeps every line visible.
            x = group[size].to_numpy(dtype=float) * 2.0 ** (0.04 * (k - (len(rules) - 1) / 2))
            y = group[metric].to_numpy(dtype=float)
            # Clipped: at 0 or 1 an interval end can differ from the estimate by rounding alone.
            err = np.clip(
                np.vstack(
                    [
                        y - group[f"{metric}_ci_low"].to_numpy(dtype=float),
                        group[f"{metric}_ci_high"].to_numpy(dtype=float) - y,
                    ]
                ),
                0.0,
                None,
            )
            style = "-" if str(rule).startswith("bayes") else "--"
            ax.errorbar(x, y, yerr=err, marker="o", linestyle=style, capsize=3, label=rule)
        if metric != "power":
            ax.axhline(alpha, color="grey", linewidth=0.8, linestyle=":")
        if len(arms) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(arms, [str(a) for a in arms])
        ax.set_xlabel(size)
        ax.set_ylim(bottom=0)
        ax.set_title(titles[metric], fontsize=10)
    axes[0].legend(fontsize=8)
    first = results[0]
    described = first.design.describe()
    figure.suptitle(
        f"{first.experiments:,} simulated experiments per point; {described.get('trials')} trials per "
        f"{'cell' if size == 'segments' else 'arm'}, base rate {described.get('base_rate')}, {truth_text(described)}",
        fontsize=10,
    )
    return figure


def truth_text(described: dict[str, Any]) -> str:
    """The simulated truth in a few words, from a design's ``describe()``.

    Examples
    --------
    >>> truth_text({"model": "variants", "effect": 0.05, "effect_arms": 1})
    'effect +0.05 on 1 arm(s)'
    >>> truth_text({"model": "segments", "effect": None, "effect_spread": 0.0})
    'A/A'
    >>> truth_text({"model": "segments", "effect": 0.1, "effect_spread": 0.2})
    'effects ~ Normal(0.1, 0.2) log-odds'
    """
    effect = described.get("effect") or 0.0
    if described.get("model") == "segments":
        spread = described.get("effect_spread") or 0.0
        if effect == 0.0 and spread == 0.0:
            return "A/A"
        return f"effects ~ Normal({effect:g}, {spread:g}) log-odds"
    return "A/A" if not effect else f"effect {effect:+g} on {described['effect_arms']} arm(s)"


def write_outputs(results: Sequence[StudyResult], directory: str | Path, payload: dict[str, Any]) -> list[Path]:
    """Write ``calibration.csv``, ``calibration.json`` and ``calibration.png`` into ``directory``, atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table = study_table(results)
    # Numbers first: they are the result, the figure only shows them.
    written = [
        atomic_write(directory / f"{STEM}.csv", lambda p: table.to_csv(p, index=False)),
        write_json(directory / f"{STEM}.json", payload),
    ]
    figure = plot_study(results)
    written.append(atomic_write(directory / f"{STEM}.png", lambda p: figure.savefig(p, format="png", dpi=120)))
    return written
