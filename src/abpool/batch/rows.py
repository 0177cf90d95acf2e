"""The rows of a batch's results table: one per experiment × (segment ×) arm, or metric × arm for a scorecard.

Every row carries the experiment's status (``ok``, ``unconverged``,
``refused``), its decision, the sample-ratio flag, diagnostics and provenance
beside the model's summary columns. In a batch of several metrics
(:data:`METRICS`) every metric gives its summary rows, marked with the metric,
its kind and its role (primary or guardrail); every row carries the
experiment's decision (the primary metric's, held when a guardrail is flagged
for the arm it would ship), and a guardrail's rows its margin, P(worse by more
than the margin) and the flag.
"""

from __future__ import annotations

from typing import Any

OK, UNCONVERGED, REFUSED = "ok", "unconverged", "refused"
# The model name a batch of several metrics per experiment records: each metric has its own model.
METRICS = "metrics"


def summary_rows(name: str, result: Any) -> list[dict[str, Any]]:
    """The results-table rows of one fitted experiment: its summary, decision, guardrail and diagnostics."""
    by_segment = {row["segment"]: row for row in result.recommendation_records()}
    diagnostics = result.diagnostics
    provenance = result.provenance()
    # The same for every row of the experiment: built once, then each row is its summary row merged in.
    first = {
        "experiment": name,
        "status": OK if diagnostics.converged else UNCONVERGED,
        "reason": None if diagnostics.converged else "; ".join(diagnostics.warnings),
    }
    last = {
        "srm_flagged": result.srm_flagged(),
        "converged": diagnostics.converged,
        "max_rhat": diagnostics.max_rhat,
        "divergences": diagnostics.divergences,
        "model": result.model,
        "prior": result.prior.name,
        "seed": result.seed,
        "data_fingerprint": provenance["data_fingerprint"],
        "abpool_version": provenance["abpool_version"],
    }
    rows = []
    for row in result.summary_records():
        decision = by_segment[row.get("segment")]
        rows.append(first | row | {"decision": decision["decision"], "decision_arm": decision["arm"]} | last)
    return rows


def scorecard_rows(name: str, card: Any) -> list[dict[str, Any]]:
    """The results-table rows of one experiment's :class:`~abpool.scorecard.Scorecard`: every metric × arm.

    Examples
    --------
    >>> import numpy as np, pandas as pd, abpool
    >>> rng = np.random.default_rng(0)
    >>> rows = pd.DataFrame({"arm": np.repeat(["A", "B"], 300), "converted": rng.random(600) < 0.3,
    ...                      "spend": rng.exponential(4.0, 600)})
    >>> card = abpool.analyze_metrics(rows, metrics=["converted", "spend"], seed=1)
    >>> table = pd.DataFrame(scorecard_rows("e1", card))
    >>> table[["metric", "role", "arm", "decision"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['converted', 'primary', 'A', 'keep running'], ['converted', 'primary', 'B', 'keep running'],
     ['spend', 'guardrail', 'A', 'keep running'], ['spend', 'guardrail', 'B', 'keep running']]
    """
    decision = card.decision()
    guardrails = {(row["metric"], row["arm"]): row for row in card.guardrails().to_dict("records")}
    unconverged = {
        metric: "; ".join(result.diagnostics.warnings)
        for metric, result in card.results.items()
        if not result.diagnostics.converged
    }
    first = {
        "experiment": name,
        "status": UNCONVERGED if unconverged else OK,
        "reason": "; ".join(f"{metric}: {why}" for metric, why in unconverged.items()) or None,
    }
    verdict = {
        "decision": decision["decision"],
        "decision_arm": decision["arm"],
        "primary_decision": decision["primary_decision"],
        "blocking_guardrails": ", ".join(decision["blocking_guardrails"]) or None,
    }
    rows = []
    for metric, result in card.results.items():
        marks = {
            "metric": metric,
            "metric_kind": result.metric.kind,
            "role": "primary" if metric == card.primary else "guardrail",
        }
        for row in summary_rows(name, result):
            guard = guardrails.get((metric, row["arm"]), {})
            # The experiment's status and decision replace the metric's own; the column order stays the same.
            rows.append(
                first
                | marks
                | row
                | first
                | verdict
                | {
                    "guardrail_margin": guard.get("margin"),
                    "prob_worse": guard.get("prob_worse"),
                    "guardrail_flagged": guard.get("flagged"),
                }
            )
    return rows


def experiment_outcome(name: str, result: Any) -> dict[str, Any]:
    """What an experiment's record keeps of its fit: ``status``, ``reason``, ``headline``, ``srm_flagged``, ``rows``.

    ``result`` is a model's result or a scorecard of several metrics.
    """
    from abpool.scorecard import Scorecard

    if isinstance(result, Scorecard):
        rows = scorecard_rows(name, result)
        headline = result.sentences()[0]
        srm = any(metric.srm_flagged() for metric in result.results.values())
    else:
        rows = summary_rows(name, result)
        headline = result.recommendation_sentences(limit=1)[0]
        srm = result.srm_flagged()
    return {
        "status": rows[0]["status"],
        "reason": rows[0]["reason"],
        "headline": headline,
        "srm_flagged": srm,
        "rows": rows,
    }


__all__ = [
    "METRICS",
    "OK",
    "REFUSED",
    "UNCONVERGED",
    "experiment_outcome",
    "scorecard_rows",
    "summary_rows",
]
