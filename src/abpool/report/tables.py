"""The tables every result is shown with, built once for the terminal and the HTML report alike.

Each function returns a :class:`~abpool.report.blocks.Table` of formatted
cells (:mod:`abpool._format`); the report lays it out in HTML, the command line
in the terminal, so both show the same numbers in the same notation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from abpool import _format as fmt
from abpool.report.blocks import Facts, Table

if TYPE_CHECKING:
    from abpool.metric import Metric
    from abpool.result import Result

MAX_ROWS_IN_TABLE = 100
MAX_ARMS_IN_MATRIX = 12
SENSITIVITY_TITLE = "Would a different prior change the decision?"


def estimates_table(result: Result, *, limit: int = MAX_ROWS_IN_TABLE) -> Table:
    """One row per arm (per segment and arm): counts, rate, pooling, P(best), lift, P(beats control), loss."""
    summary = result.estimates()
    metric = result.metric
    level = f"{result.ci:.0%}"
    observed = _observed_cells(metric)
    unit = f", {metric.difference_unit}" if metric.difference_unit else ""
    # Headers break where the terminal may break them; HTML shows the breaks as spaces.
    columns = [
        *(["segment"] if result.segmented else []),
        "arm",
        *(heading for heading, _ in observed),
        f"{metric.noun}\n({level} interval)",
        "pooling",
        "P(best)",
        f"lift vs {result.control}{unit}\n({level} interval)",
        f"relative lift\n({level} interval)",
        "P(beats\ncontrol)",
    ]
    if result.rope is not None:
        columns.append(f"P(|lift| <\n{metric.amount(result.rope)})")
    columns.append("expected\nloss")
    rows = []
    for row in summary.iloc[:limit].itertuples(index=False):
        if row.is_control:
            lift, relative = "control", "control"
        else:
            lift = f"{metric.difference(row.lift)} ({fmt.interval(row.lift_ci_low, row.lift_ci_high, metric.signed)})"
            relative = (
                f"{fmt.relative(row.relative_lift)} "
                f"({fmt.interval(row.relative_lift_ci_low, row.relative_lift_ci_high, fmt.relative)})"
            )
        cells = [
            *([str(row.segment)] if result.segmented else []),
            str(row.arm),
            *(show(row) for _, show in observed),
            f"{metric.value(row.rate)} ({fmt.interval(row.rate_ci_low, row.rate_ci_high, metric.value)})",
            fmt.fraction(row.pooling),
            fmt.pct(row.prob_best),
            lift,
            relative,
            fmt.pct(row.prob_beats_control),
        ]
        if result.rope is not None:
            cells.append(fmt.pct(row.prob_in_rope))
        cells.append(metric.loss(row.expected_loss))
        rows.append(tuple(cells))
    text_columns = 2 if result.segmented else 1
    noun = metric.noun
    in_points = (
        " in percentage points (pp)" if metric.kind == "binary" else f" in the units of {metric.name or 'the metric'}"
    )
    note = (
        f"{noun.capitalize()}s are posterior medians with {level} credible intervals; the lift is {noun} − control "
        f"{noun}{in_points}, the relative lift {noun} / control {noun} − 1. Pooling is how far the estimate is "
        "pulled toward the population: 0 = its own data decide, 1 = the population decides. Expected loss is "
        f"the {noun} given up, on average, by choosing that arm when another "
        f"{'in its segment ' if result.segmented else ''}may be better."
    )
    if len(summary) > limit:
        note += f" The first {limit:,} of {len(summary):,} rows are shown; --json and summary.json have all."
    return Table(
        "Estimates",
        tuple(columns),
        tuple(rows),
        numeric=(*[False] * text_columns, *[True] * (len(columns) - text_columns)),
        note=note,
    )


def _observed_cells(metric: Metric) -> list[tuple[str, Callable[[Any], str]]]:
    """Headings and formatters of what each cell observed: counts and rate, or users, mean and spread."""
    if metric.kind == "binary":
        return [
            ("trials", lambda row: fmt.count(row.trials)),
            ("successes", lambda row: fmt.count(row.successes)),
            ("observed\nrate", lambda row: fmt.rate(row.observed_rate)),
        ]
    return [
        ("users", lambda row: fmt.count(row.trials)),
        ("observed\nmean", lambda row: metric.value(row.observed_rate)),
        ("sd", lambda row: fmt.number(row.observed_sd)),
    ]


def pairwise_table(result: Result, segment: str | None = None) -> Table | None:
    """The matrix of P(row beats column), while it is small enough to read."""
    if len(result.arms) > MAX_ARMS_IN_MATRIX:
        return None
    matrix = result.prob_greater_matrix(segment)
    names = [str(name) for name in matrix.index]
    rows = tuple(
        (name, *("" if other == name else fmt.pct(matrix.loc[name, other]) for other in names)) for name in names
    )
    title = "P(row beats column)" + ("" if segment is None else f" in {segment}")
    return Table(title, ("", *names), rows, numeric=(False, *[True] * len(names)))


def population_table(result: Result) -> Table:
    """The population level: one row per quantity, median and interval at the result's level."""
    population = result.population()
    metric = result.metric
    rows = []
    for row in population.itertuples(index=False):
        value_scale = row.quantity in ("population_mean", "control_rate", "mu", "tau")
        lift_scale = row.quantity == "new_segment_lift"
        if value_scale:
            median, interval = metric.value(row.median), fmt.interval(row.ci_low, row.ci_high, metric.value)
        elif lift_scale:
            median, interval = metric.difference(row.median), fmt.interval(row.ci_low, row.ci_high, metric.signed)
        else:
            median, interval = fmt.number(row.median), fmt.interval(row.ci_low, row.ci_high, fmt.number)
        rows.append((row.description, median, interval, fmt.pct(row.prob_positive)))
    return Table(
        "Population",
        ("quantity", "median", f"{result.ci:.0%} interval", "P(> 0)"),
        tuple(rows),
        (False, True, True, True),
        "Posterior medians and equal-tailed intervals; P(> 0) for effects, the chance they are positive.",
    )


def _classical_columns(metric: Metric) -> tuple[tuple[str, str, Any], ...]:
    """Columns of the classical table as shown: (column, heading, formatter); those absent are skipped."""
    return (
        ("segment", "segment", str),
        ("rate_i", "rate i", fmt.rate),
        ("rate_j", "rate j", fmt.rate),
        ("mean_i", "mean i", metric.value),
        ("mean_j", "mean j", metric.value),
        ("difference", "difference", metric.difference),
        ("test", "test", str),
        ("p_value", "p (raw)", fmt.p_value),
        ("p_bonferroni", "p Bonferroni", fmt.p_value),
        ("p_holm", "p Holm", fmt.p_value),
        ("p_bh", "p BH", fmt.p_value),
        ("prob_greater", "P(i > j), Bayesian", fmt.pct),
    )


def classical_table(result: Result, *, limit: int = MAX_ROWS_IN_TABLE) -> Table | None:
    """The classical tests with adjusted p-values beside the posterior's P(i > j)."""
    if result.classical_skipped():
        return None
    value = result.classical()
    if not isinstance(value, pd.DataFrame) or value.empty:
        return None
    columns_shown = _classical_columns(result.metric)
    shown = [c for c in columns_shown if c[0] in value.columns and not value[c[0]].isna().all()]
    rows = tuple(
        (f"{record['arm_i']} vs {record['arm_j']}", *(format_(record[column]) for column, _, format_ in shown))
        for record in value.iloc[:limit].to_dict("records")
    )
    columns = ("comparison (i vs j)", *(heading for _, heading, _ in shown))
    numeric = (False, *(column not in ("segment", "test") for column, _, _ in shown))
    tests = (
        "Two-sided tests of equal rates (z-test, or Fisher's exact test for small counts)"
        if result.metric.kind == "binary"
        else "Two-sided Welch t-tests of equal means (unequal variances)"
    )
    note = (
        f"{tests}; p-values adjusted over "
        "the whole family of comparisons (Bonferroni, Holm, Benjamini-Hochberg). The last column is the "
        "hierarchical model's answer."
    )
    if len(value) > limit:
        note += f" The first {limit:,} of {len(value):,} comparisons are shown; --json has all."
    return Table("Classical comparison", columns, rows, numeric, note)


def data_facts(result: Result) -> Facts:
    """Where the data came from, its form, its columns and its fingerprint."""
    cells = result.cells
    form = {"units": "one row per user", "cells": "aggregated counts", "moments": "sufficient statistics per arm"}
    items = [("source", cells.source)]
    if cells.origin is not None and cells.origin.where is not None:
        items.append(("rows kept", cells.origin.where))  # one experiment of a batch, one metric of a long table
    items += [
        ("form", f"{form[cells.form]}, {cells.input_rows:,} rows read, {len(cells.table):,} cells"),
    ]
    if cells.segment_columns:
        items.append(("segment columns", ", ".join(cells.segment_columns)))
    items.append(("arm column", cells.arm_column))
    items += [(f"{option.removeprefix('--')} column", column) for option, column in cells.column_options()]
    cap = getattr(cells, "cap", None)
    if cap:
        items.append(
            (
                "capping",
                f"values above the {cap['quantile']:g} quantile of the experiment, {cap['value']:,.6g}, lowered to it "
                f"({cap['capped']:,} values)",
            )
        )
    items.append(("fingerprint (SHA-256 of the cells)", cells.fingerprint))
    return Facts("Data", tuple(items))


def _prior_header(label: str) -> str:
    # Break after the first word: prior columns stay narrow in the terminal.
    return label.replace(" ", "\n", 1)


def sensitivity_table(found: dict[str, Any], *, limit: int = MAX_ROWS_IN_TABLE) -> Table:
    """One row per treatment arm (per segment), a column per prior: P(beats control) · lift (percentage points).

    ``found`` is a sensitivity check as saved (:meth:`abpool.sensitivity.Sensitivity.to_dict`).
    """
    from abpool.metric import Metric

    metric = Metric.from_description(found.get("metric"))
    labels = [entry["label"] for entry in found["panel"]]
    segmented = bool(found["segmented"])
    treated = [row for row in found["answers"] if not row["is_control"]]
    cell = {(row["prior"], row["segment"], row["arm"]): row for row in treated}
    keys = list(dict.fromkeys((row["segment"], row["arm"]) for row in treated))
    rows = []
    for segment, arm in keys[:limit]:
        values = []
        for label in labels:
            row = cell[(label, segment, arm)]
            values.append(f"{fmt.pct(row['prob_beats_control'])} · {metric.signed(row['lift'])}")
        rows.append((*([str(segment)] if segmented else []), str(arm), *values))
    note = f"First {limit:,} of {len(keys):,} rows; the JSON has all." if len(keys) > limit else ""
    return Table(
        f"P(beats control {found['control']}) · lift{' in pp' if metric.kind == 'binary' else ''}, under each prior",
        (*(["segment"] if segmented else []), "arm", *map(_prior_header, labels)),
        tuple(rows),
        (*([False] if segmented else []), False, *[True] * len(labels)),
        note,
    )


def sensitivity_decisions_table(found: dict[str, Any], *, limit: int = MAX_ROWS_IN_TABLE) -> Table:
    """One row per decision (the experiment, or each segment), a column per prior, and the verdict."""
    from abpool.decisions import decision_text

    labels = [entry["label"] for entry in found["panel"]]
    segmented = bool(found["segmented"])
    chosen = {(row["prior"], row["segment"]): row for row in found["decisions"]}
    rows = []
    for verdict in found["verdicts"][:limit]:
        segment = verdict["segment"]
        decisions_under = [
            decision_text(
                chosen[(label, segment)]["decision"], chosen[(label, segment)]["arm"], found["control"]
            ).replace("no meaningful difference", "no difference")
            for label in labels
        ]
        rows.append((str(segment) if segmented else "experiment", *decisions_under, verdict["verdict"]))
    verdicts = found["verdicts"]
    note = f"First {limit:,} of {len(verdicts):,} decisions; the JSON has all." if len(verdicts) > limit else ""
    return Table(
        "Decision under each prior",
        ("segment" if segmented else "decision", *map(_prior_header, labels), "verdict"),
        tuple(rows),
        # Marked numeric so a narrow terminal splits the prior columns rather than cutting them.
        (False, *[True] * (len(labels) + 1)),
        note,
    )


def calibration_table(found: dict[str, Any]) -> Table:
    """This design's A/A calibration (:meth:`abpool.outputs.ReportableResult.calibrate`) with Monte Carlo intervals."""
    low, high = found["false_winner_rate_ci"]
    t_low, t_high = found["calibrated_threshold_ci"]
    return Table(
        "This design's A/A calibration",
        ("quantity", "value", "95% Monte Carlo interval"),
        (
            (
                f"false-winner rate at P(beats control) ≥ {found['threshold']:.0%}",
                fmt.pct(found["false_winner_rate"]),
                fmt.interval(low, high, fmt.pct),
            ),
            (
                f"threshold keeping false winners ≤ {found['target_rate']:.0%}",
                fmt.pct(found["calibrated_threshold"]),
                fmt.interval(t_low, t_high, fmt.pct),
            ),
        ),
        (False, True, True),
        f"{found['experiments']:,} simulated A/A experiments ({found['truth']}), each refitted with this "
        f"model and its settings; seed {found['seed']}.",
    )
