"""Several metrics of one experiment: a primary metric that decides, and guardrails that may veto.

Each metric is analysed with its own model through the result contract: a
column holding only 0/1 (or true/false) is a conversion, fitted by the
variants model; any other numeric column is a continuous metric, fitted by
the means model. The first metric (or ``primary``) carries the decision; every
other one is a **guardrail**: it is *flagged* for a treatment arm when the
probability that the arm worsens it by more than its margin exceeds the risk
level,

    P(lift < −margin) > level        (or P(lift > margin) for a lower-is-better metric)

with the margin in the metric's own units (default: its threshold of caring,
0.1 percentage point for a rate, 1% of the grand mean for a mean) and the level
0.2 by default: a guardrail holds a launch while a meaningful harm is still
one chance in five. A primary decision to ship an arm with a flagged guardrail
becomes "hold".

Examples
--------
>>> import pandas as pd, numpy as np, abpool
>>> rng = np.random.default_rng(0)
>>> rows = pd.DataFrame({"variant": np.repeat(["A", "B"], 500),
...                      "converted": rng.random(1000) < 0.2,
...                      "revenue": rng.exponential(5.0, 1000)})
>>> card = abpool.analyze_metrics(rows, metrics=["converted", "revenue"], seed=1)
>>> card.primary, [type(r).__name__ for r in card.results.values()]
('converted', ['VariantsResult', 'MeansResult'])
>>> list(card.guardrails().columns[:4])
['metric', 'arm', 'direction', 'margin']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abpool import _format as fmt
from abpool import decisions
from abpool._validation import check_probability
from abpool.data import DataSource
from abpool.data.metrics import MEAN, MetricsData
from abpool.errors import InvalidArgumentError
from abpool.io import atomic_write, to_jsonable
from abpool.result import Result

DEFAULT_LEVEL = 0.2
HOLD = decisions.HOLD
GUARDRAIL_COLUMNS = {
    "metric": "the guardrail metric",
    "arm": "treatment arm",
    "direction": "'higher is better' or 'lower is better'",
    "margin": "the harm that matters, in the metric's units (a rate: absolute, e.g. 0.001 = 0.1 pp)",
    "lift": "posterior median of the arm's lift over the control on this metric",
    "lift_ci_low": "credible interval of the lift, lower end",
    "lift_ci_high": "credible interval of the lift, upper end",
    "prob_worse": "P(the arm worsens the metric by more than the margin)",
    "flagged": "prob_worse > level: the arm may be doing meaningful harm",
}


@dataclass(frozen=True)
class Scorecard:
    """The analyses of several metrics of one experiment, a primary decision and its guardrails.

    Attributes
    ----------
    results : dict of str to Result
        One result per metric, the primary first.
    primary : str
        The metric that decides.
    margins : dict of str to float
        Each guardrail's margin, in its own units.
    lower_is_better : frozenset of str
        Guardrails whose increase is the harm (latency, refunds …).
    level : float
        A guardrail is flagged when P(harm beyond its margin) exceeds this.
    """

    results: dict[str, Result]
    primary: str
    margins: dict[str, float]
    lower_is_better: frozenset[str] = field(default_factory=frozenset)
    level: float = DEFAULT_LEVEL

    @property
    def primary_result(self) -> Result:
        """The primary metric's result."""
        return self.results[self.primary]

    @property
    def guardrail_metrics(self) -> list[str]:
        """Every metric but the primary, in the order given."""
        return [name for name in self.results if name != self.primary]

    def guardrails(self) -> pd.DataFrame:
        """One row per guardrail metric × treatment arm; columns :data:`GUARDRAIL_COLUMNS`."""
        rows = []
        for name in self.guardrail_metrics:
            result = self.results[name]
            lower = name in self.lower_is_better
            margin = self.margins[name]
            draws = result.rate_draws()
            control = draws[:, result.control_index]
            summary = result.estimates().set_index("arm")
            for arm in result.treatments:
                lift = draws[:, result.arm_index(arm)] - control
                worse = float(np.mean(lift > margin)) if lower else float(np.mean(lift < -margin))
                rows.append(
                    {
                        "metric": name,
                        "arm": arm,
                        "direction": "lower is better" if lower else "higher is better",
                        "margin": margin,
                        "lift": float(summary.loc[arm, "lift"]),
                        "lift_ci_low": float(summary.loc[arm, "lift_ci_low"]),
                        "lift_ci_high": float(summary.loc[arm, "lift_ci_high"]),
                        "prob_worse": worse,
                        "flagged": worse > self.level,
                    }
                )
        return pd.DataFrame(rows, columns=list(GUARDRAIL_COLUMNS))

    def decision(self) -> dict[str, Any]:
        """The primary metric's decision, held when the arm it would ship has a flagged guardrail."""
        row = self.primary_result.recommendations().iloc[0]
        flagged = self.guardrails()
        blocking = sorted(flagged.loc[flagged["flagged"] & (flagged["arm"] == row["arm"]), "metric"])
        held = row["decision"] == decisions.SHIP and row["arm"] != self.primary_result.control and bool(blocking)
        return {
            "decision": HOLD if held else row["decision"],
            "arm": row["arm"],
            "primary_decision": row["decision"],
            "blocking_guardrails": blocking if held else [],
        }

    def sentences(self) -> list[str]:
        """The decision and every flagged guardrail, in words."""
        decision = self.decision()
        sentences = []
        if decision["decision"] == HOLD:
            sentences.append(
                f"Hold: {self.primary} alone would ship {decision['arm']}, but its guardrail"
                f"{'s' if len(decision['blocking_guardrails']) > 1 else ''} "
                f"{', '.join(decision['blocking_guardrails'])} may be hurt; look before shipping."
            )
        else:
            sentences.append(f"On {self.primary} (primary): {self.primary_result.recommendation_sentences()[0]}")
        for row in self.guardrails().itertuples(index=False):
            metric = self.results[row.metric].metric
            change = "rises" if row.direction == "lower is better" else "falls"
            verdict = "flagged" if row.flagged else "holds"
            sentences.append(
                f"Guardrail {row.metric} {verdict} for {row.arm}: a {fmt.pct(row.prob_worse)} chance it {change} by "
                f"more than {metric.amount(row.margin)} (flagged above {self.level:.0%}); lift "
                f"{metric.difference(row.lift)} ({fmt.interval(row.lift_ci_low, row.lift_ci_high, metric.signed)})."
            )
        return sentences

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the decision, the guardrails, and every metric's full result document."""
        return to_jsonable(
            {
                "primary": self.primary,
                "level": self.level,
                "margins": self.margins,
                "lower_is_better": sorted(self.lower_is_better),
                "decision": self.decision(),
                "sentences": self.sentences(),
                "guardrails": self.guardrails().to_dict("records"),
                "metrics": {name: result.to_dict() for name, result in self.results.items()},
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The scorecard as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_html(self) -> str:
        """One self-contained report: the decision and guardrails, then each metric's sections."""
        from abpool.report.render import render_report
        from abpool.report.scorecard import scorecard_report

        return render_report(scorecard_report(self))

    def save(self, directory: str | Path, *, report: bool = True) -> Path:
        """Write ``summary.json`` and (with ``report``) ``report.html`` into ``directory``, each atomically.

        Returns the directory.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        text = self.to_json()
        if report:
            html = self.to_html()
            atomic_write(path / "report.html", lambda p: p.write_text(html, encoding="utf-8"))
        atomic_write(path / "summary.json", lambda p: p.write_text(text, encoding="utf-8"))
        return path

    def __repr__(self) -> str:
        decision = self.decision()
        flagged = int(self.guardrails()["flagged"].sum())
        return (
            f"<Scorecard primary {self.primary}; guardrails {', '.join(self.guardrail_metrics) or 'none'}; "
            f"{decision['decision']}{'' if decision['arm'] is None else ' ' + str(decision['arm'])}; "
            f"{flagged} guardrail flag(s)>"
        )


def analyze_metrics(
    data: DataSource,
    *,
    metrics: Sequence[str],
    metric_column: str | None = None,
    value: str | None = None,
    arm: str | None = None,
    primary: str | None = None,
    margins: Mapping[str, float] | None = None,
    lower_is_better: Sequence[str] = (),
    level: float = DEFAULT_LEVEL,
    control: str | None = None,
    cap: float | None = None,
    ci: float = 0.95,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
    on_unconverged: str = "warn",
) -> Scorecard:
    """Analyse several metrics of one experiment: a primary that decides, guardrails that may hold it.

    Parameters
    ----------
    data : DataFrame or path
        Unit rows with one column per metric (a file, glob, DataFrame or
        DuckDB database with ``table``/``query``).
    metrics : sequence of str
        The metric columns, the primary first unless ``primary`` is named.
        A 0/1 or true/false column is fitted by the variants model, any other
        numeric column by the means model. With ``metric_column``: the
        metrics' names in that column instead.
    metric_column : str, optional
        A long table: the column naming each row's metric, its value in
        ``value`` (default ``value``, ``metric``, ``revenue`` or ``amount``);
        each metric is the rows with its name, numbered in the whole table.
    value : str, optional
        The value column of a long table.
    arm : str, optional
        Arm column (detected by default).
    primary : str, optional
        The metric that decides (default: the first).
    margins : mapping, optional
        A guardrail's margin in its own units (default: its threshold of caring).
    lower_is_better : sequence of str
        Guardrails whose increase is the harm.
    level : float
        A guardrail is flagged when P(harm beyond its margin) exceeds this (default 0.2).
    control, ci, split, seed, on_unconverged
        As for every model; one seed serves every metric.
    cap : float, optional
        Winsorise continuous metrics above this quantile (binary metrics are not capped).
    table, query : str, optional
        With a DuckDB database file: its table, or a SQL query over it.
    where : str, optional
        Only the rows meeting this DuckDB SQL condition (one experiment of many), for every metric.

    Returns
    -------
    Scorecard
    """
    from abpool.data.metrics import read_metrics

    settings = scorecard_settings(metrics, primary, margins, lower_is_better, level)
    data = read_metrics(
        data,
        metrics,
        metric_column=metric_column,
        value=value,
        arm=arm,
        control=control,
        cap=cap,
        table=table,
        query=query,
        where=where,
    )
    return fit_metrics(data, **settings, control=control, ci=ci, split=split, seed=seed, on_unconverged=on_unconverged)


def scorecard_settings(
    metrics: Sequence[str],
    primary: str | None = None,
    margins: Mapping[str, float] | None = None,
    lower_is_better: Sequence[str] = (),
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The scorecard's settings checked against its metrics: ``primary``, ``margins``, ``lower_is_better``, ``level``.

    Checked before any data is read, so that a misspelt guardrail costs nothing.

    Examples
    --------
    >>> scorecard_settings(["converted", "revenue"], margins={"revenue": 0.5})["primary"]
    'converted'
    >>> scorecard_settings(["converted", "revenue"], lower_is_better=["converted"])
    Traceback (most recent call last):
    abpool.errors.InvalidArgumentError: margins and lower_is_better name guardrails (revenue), got 'converted'
    """
    from abpool.data.metrics import _metric_names

    names = _metric_names(metrics)
    primary = names[0] if primary is None else str(primary)
    if primary not in names:
        raise InvalidArgumentError(f"primary must be one of the metrics {', '.join(names)}, got {primary!r}")
    if isinstance(lower_is_better, str):
        lower_is_better = [lower_is_better]
    for name in [*(margins or {}), *lower_is_better]:
        if name not in names or name == primary:
            guardrails = ", ".join(n for n in names if n != primary) or "none"
            raise InvalidArgumentError(f"margins and lower_is_better name guardrails ({guardrails}), got {name!r}")
    chosen = {str(name): float(margin) for name, margin in (margins or {}).items()}
    for name, margin in chosen.items():
        if not margin >= 0:
            raise InvalidArgumentError(f"the margin of {name} must be at least 0, got {margin}")
    return {
        "primary": primary,
        "margins": chosen,
        "lower_is_better": sorted(str(name) for name in lower_is_better),
        "level": check_probability(level, "level", "0.2"),
    }


def fit_metrics(
    data: MetricsData,
    *,
    primary: str | None = None,
    margins: Mapping[str, float] | None = None,
    lower_is_better: Sequence[str] = (),
    level: float = DEFAULT_LEVEL,
    control: str | None = None,
    ci: float = 0.95,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    on_unconverged: str = "warn",
) -> Scorecard:
    """Fit each metric of :class:`~abpool.data.metrics.MetricsData` with its model, one seed for all.

    The settings are those of :func:`analyze_metrics`.

    Examples
    --------
    >>> import pandas as pd
    >>> from abpool.data.metrics import read_metrics
    >>> rows = pd.DataFrame({"arm": ["A", "B"] * 50, "converted": [0, 1, 1, 0] * 25,
    ...                      "spend": [float(i % 7) for i in range(100)]})
    >>> card = fit_metrics(read_metrics(rows, ["converted", "spend"]), seed=1)
    >>> card.primary, card.guardrail_metrics
    ('converted', ['spend'])
    """
    from abpool._validation import check_seed
    from abpool.means import fit_means
    from abpool.variants import fit_variants

    settings = scorecard_settings(data.names, primary, margins, lower_is_better, level)
    primary = settings["primary"]
    seed = check_seed(seed)
    common = dict(control=control, ci=ci, split=split, seed=seed, on_unconverged=on_unconverged)
    results: dict[str, Result] = {}
    for name in [primary, *(name for name in data.names if name != primary)]:
        fit = fit_means if data.kind(name) == MEAN else fit_variants
        results[name] = fit(data.metrics[name], **common)
    resolved = {name: settings["margins"].get(name, results[name].threshold) for name in results if name != primary}
    return Scorecard(results, primary, resolved, frozenset(settings["lower_is_better"]), settings["level"])
