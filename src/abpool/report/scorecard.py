"""The report of several metrics of one experiment: the decision and its guardrails, then each metric.

The scorecard is typed ``Any`` here: :class:`abpool.scorecard.Scorecard` renders itself through this
module, which must not import it back.
"""

from __future__ import annotations

from typing import Any

from abpool import _format as fmt
from abpool.report.blocks import Alert, Decisions, Report, Section, Table, Text
from abpool.report.sections import experiment_heading, provenance_items, result_sections

GUARDRAIL_PARTS = ("question", "estimates", "figures", "prior", "diagnostics")


def guardrails_table(card: Any) -> Table:
    """One row per guardrail metric × treatment arm: direction, margin, lift, P(worse), flag."""
    rows = []
    for row in card.guardrails().itertuples(index=False):
        metric = card.results[row.metric].metric
        rows.append(
            (
                str(row.metric),
                str(row.arm),
                row.direction,
                metric.amount(row.margin),
                f"{metric.difference(row.lift)} ({fmt.interval(row.lift_ci_low, row.lift_ci_high, metric.signed)})",
                fmt.pct(row.prob_worse),
                "FLAGGED" if row.flagged else "holds",
            )
        )
    level = f"{card.results[card.primary].ci:.0%}"
    return Table(
        "Guardrails",
        (
            "metric",
            "arm",
            "better",
            "margin",
            f"lift vs control\n({level} interval)",
            "P(worse by\n> margin)",
            "verdict",
        ),
        tuple(rows),
        (False, False, False, True, True, True, False),
        f"A guardrail is flagged when the chance that the arm worsens it by more than its margin exceeds "
        f"{card.level:.0%}; a flagged guardrail holds the primary metric's decision to ship that arm.",
    )


def scorecard_report(card: Any, *, figures: bool = True) -> Report:
    """The whole report: decision and guardrails first, then every metric's own sections."""
    guardrails = ", ".join(card.guardrail_metrics) or "none"
    flagged = card.guardrails()
    blocks: list = []
    if bool(flagged["flagged"].any()):
        names = sorted(set(flagged.loc[flagged["flagged"], "metric"]))
        blocks.append(Alert("Guardrail flagged", (f"{', '.join(names)}: see the table below.",)))
    blocks += [Decisions(tuple(card.sentences())), guardrails_table(card)]
    sections = [Section("scorecard", "Decision and guardrails", tuple(blocks))]
    for index, (name, result) in enumerate(card.results.items()):
        if name == card.primary:
            sections += result_sections(result, prefix=f"metric{index}-", heading=f"{name} (primary)", figures=figures)
            continue
        # A guardrail's verdict is in the table above: its own ship/keep-running rule would answer another question.
        found = result_sections(
            result, prefix=f"metric{index}-", heading=f"{name} (guardrail)", figures=figures, parts=GUARDRAIL_PARTS
        )
        if name in card.lower_is_better:
            note = Text(
                f"{name} is lower-is-better: in these tables P(beats control) is the chance of a higher value, P(best) "
                "of the highest, and the expected loss that of a lower value — the guardrail table above reads them "
                "the right way round."
            )
            found = (Section(found[0].id, found[0].title, (note, *found[0].blocks)), *found[1:])
        sections += found
    warnings = tuple(
        f"{name}: {warning}"
        for name, result in card.results.items()
        for warning in ([] if result.diagnostics.converged else result.diagnostics.warnings)
    )
    return Report(
        title=f"{experiment_heading(card.primary_result)}Experiment scorecard: {card.primary}",
        subtitle=f"Primary metric {card.primary}; guardrails {guardrails}",
        sections=tuple(sections),
        provenance=provenance_items(card.primary_result),
        warnings=warnings,
    )
