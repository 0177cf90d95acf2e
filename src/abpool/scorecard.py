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
from abpool.errors import InvalidArgumentError, InvalidDataError
from abpool.io import atomic_write, to_jsonable
from abpool.result import Result

DEFAULT_LEVEL = 0.2
HOLD = "hold"
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

    def save(self, directory: str | Path) -> Path:
        """Write ``report.html`` and ``summary.json`` into ``directory`` (each atomically); returns it."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        html, text = self.to_html(), self.to_json()
        atomic_write(path / "summary.json", lambda p: p.write_text(text, encoding="utf-8"))
        atomic_write(path / "report.html", lambda p: p.write_text(html, encoding="utf-8"))
        return path

    def __repr__(self) -> str:
        decision = self.decision()
        flagged = int(self.guardrails()["flagged"].sum())
        return (
            f"<Scorecard primary {self.primary}; guardrails {', '.join(self.guardrail_metrics) or 'none'}; "
            f"{decision['decision']}{'' if decision['arm'] is None else ' ' + str(decision['arm'])}; "
            f"{flagged} guardrail flag(s)>"
        )


def is_binary(
    data: DataSource,
    column: str,
    *,
    table: str | None = None,
    query: str | None = None,
    where: str | None = None,
    role: str = "metric",
) -> bool:
    """Whether ``column`` holds only 0/1 or true/false (a conversion), asked of DuckDB in one aggregate.

    ``where`` keeps only the rows meeting a DuckDB SQL condition (one metric of a long table); ``role``
    names the column in messages.
    """
    from abpool.data.local import _column_types, _fetchone, _is_numeric, _open, _quote, connection

    with connection(table=table, query=query, where=where) as con:
        source = _open(con, data)
        types = _column_types(con.con)
        if column not in types:
            listed = ", ".join(name for name in types if name != con.row)
            raise InvalidDataError(f"{role} column {column!r} not found in {source}; columns are: {listed}")
        kind = types[column]
        if kind == "BOOLEAN":
            return True
        if not _is_numeric(kind):
            raise InvalidDataError(
                f"{role} column {column!r} of {source} is {kind.lower()}, not numbers; a metric is a 0/1 outcome "
                "or a numeric value per user"
            )
        quoted = _quote(column)
        (others,) = _fetchone(con, f"SELECT count(*) FROM abpool_scan WHERE {quoted} NOT IN (0, 1)")
        return int(others) == 0


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

    Returns
    -------
    Scorecard
    """
    from abpool._validation import check_seed
    from abpool.data import read_cells, read_moments
    from abpool.means import fit_means
    from abpool.variants import fit_variants

    names = [str(name) for name in metrics]
    if not names or isinstance(metrics, str):
        raise InvalidArgumentError(f"metrics must be a list of one or more column names, got {metrics!r}")
    if len(set(names)) < len(names):
        raise InvalidArgumentError(f"metrics must name each column once, got {', '.join(names)}")
    primary = names[0] if primary is None else str(primary)
    if primary not in names:
        raise InvalidArgumentError(f"primary must be one of the metrics {', '.join(names)}, got {primary!r}")
    for name in [*(margins or {}), *lower_is_better]:
        if name not in names or name == primary:
            guardrails = ", ".join(n for n in names if n != primary) or "none"
            raise InvalidArgumentError(f"margins and lower_is_better name guardrails ({guardrails}), got {name!r}")
    level = check_probability(level, "level", "0.2")
    seed = check_seed(seed)
    if value is not None and metric_column is None:
        raise InvalidArgumentError("value names the value column of a long table; give metric_column too")
    ordered = [primary, *(name for name in names if name != primary)]
    results: dict[str, Result] = {}
    common = dict(control=control, ci=ci, split=split, seed=seed, on_unconverged=on_unconverged)
    source = dict(table=table, query=query)
    for name in ordered:
        column, where = name, None
        if metric_column is not None:
            column, where = _long_form(data, metric_column, value, name, source)
        role = "metric" if metric_column is None else "value"
        if is_binary(data, column, where=where, role=role, **source):
            cells = read_cells(data, arm=arm, outcome=column, control=control, where=where, **source)
            results[name] = fit_variants(cells, **common)
        else:
            moments = read_moments(data, arm=arm, value=column, control=control, cap=cap, where=where, **source)
            results[name] = fit_means(moments, **common)
    arms = {name: result.arms for name, result in results.items()}
    if len({tuple(sorted(a)) for a in arms.values()}) > 1:
        raise InvalidDataError(
            "the metrics do not cover the same arms ("
            + "; ".join(f"{name}: {', '.join(a)}" for name, a in arms.items())
            + "); every metric needs a value for every arm"
        )
    chosen = {name: float(margins[name]) for name in (margins or {})}
    for name, value in chosen.items():
        if not value >= 0:
            raise InvalidArgumentError(f"the margin of {name} must be at least 0, got {value}")
    resolved = {name: chosen.get(name, results[name].threshold) for name in ordered if name != primary}
    return Scorecard(results, primary, resolved, frozenset(lower_is_better), level)


def _long_form(
    data: DataSource, metric_column: str, value: str | None, name: str, source: dict[str, Any]
) -> tuple[str, str]:
    """The value column and the SQL condition that select one metric's rows of a long table."""
    from abpool.data.cells import _resolve
    from abpool.data.local import _column_types, _fetchone, _literal, _open, _quote, connection
    from abpool.data.moments import VALUE_NAMES

    with connection(**source) as con:
        shown = _open(con, data)
        columns = [c for c in _column_types(con.con) if c != con.row]
        metric_column = str(_resolve(columns, metric_column, (), "metric", "--metric-column", shown))
        column = str(_resolve(columns, value, VALUE_NAMES, "value", "--value", shown))
        where = f"CAST({_quote(metric_column)} AS VARCHAR) = {_literal(name)}"
        if _fetchone(con, f"SELECT 1 FROM abpool_scan WHERE {where} LIMIT 1") is None:
            found = [
                str(row[0])
                for row in con.execute(
                    f"SELECT DISTINCT CAST({_quote(metric_column)} AS VARCHAR) FROM abpool_scan ORDER BY 1 LIMIT 21"
                ).fetchall()
            ]
            raise InvalidDataError(
                f"metric {name!r} has no rows in column {metric_column!r} of {shown}; its metrics are: "
                f"{fmt.names_list([repr(m) for m in found], 20)}"
            )
    return column, where
