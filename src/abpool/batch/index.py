"""A batch's index page: one row per experiment with its decision, sample-ratio check and fit, linking to its report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from abpool.batch.rows import METRICS, REFUSED, UNCONVERGED
from abpool.batch.run import experiment_key
from abpool.decisions import decision_text


def short_decision(rows: list[dict[str, Any]]) -> str:
    """An experiment's decision in a few words; with segments, how many segments got each.

    Examples
    --------
    >>> rows = [{"arm": "A", "is_control": True, "decision": "ship", "decision_arm": "B"},
    ...         {"arm": "B", "is_control": False, "decision": "ship", "decision_arm": "B"}]
    >>> short_decision(rows)
    'ship B'
    >>> short_decision([row | {"metric": "latency", "guardrail_flagged": not row["is_control"]} for row in rows])
    'ship B; guardrails flagged: latency'
    """
    control = next(row["arm"] for row in rows if row["is_control"])
    by_segment = {row.get("segment"): decision_text(row["decision"], row["decision_arm"], control) for row in rows}
    flagged = sorted({str(row["metric"]) for row in rows if row.get("guardrail_flagged")})
    if flagged:
        # A scorecard: the guardrails that may be hurt are part of the headline.
        return f"{next(iter(by_segment.values()))}; guardrails flagged: {', '.join(flagged)}"
    if len(by_segment) == 1:
        return next(iter(by_segment.values()))
    counts = Counter(by_segment.values())
    return f"{len(by_segment)} segments: " + ", ".join(f"{text} in {n}" for text, n in counts.most_common())


def _row(record: dict[str, Any], experiments: Path) -> dict[str, Any]:
    if record["status"] == REFUSED:
        return {
            "name": record["experiment"],
            "link": None,
            "status": REFUSED,
            "headline": str(record.get("reason") or ""),
            "sentence": "",
            "srm": "—",
            "fit": "—",
        }
    key = experiment_key(record["experiment"])
    # Linked only when it was written: --no-reports saves the runs without their HTML.
    report = f"{experiments.name}/{key}/report.html"
    max_rhat = record["rows"][0].get("max_rhat")
    if record["status"] == UNCONVERGED:
        fit = f"did not converge: {record.get('reason')}"
    else:
        fit = f"converged (max R-hat {max_rhat:.3f})" if max_rhat else "converged"
    return {
        "name": record["experiment"],
        "link": report if (experiments / key / "report.html").exists() else None,
        "status": record["status"],
        "headline": short_decision(record["rows"]),
        "sentence": record.get("headline") or "",
        "srm": "mismatch" if record.get("srm_flagged") else "as intended",
        "fit": fit,
    }


def write_index(
    path: Path, records: list[dict[str, Any]], experiments: Path, *, source: str, seed: int, model: str
) -> Path:
    """Write ``index.html`` for ``records`` (their runs under ``experiments``)."""
    from abpool.report.render import write_batch_index

    counts = Counter(record["status"] for record in records)
    summary = ", ".join(f"{count:,} {status}" for status, count in sorted(counts.items()))
    return write_batch_index(
        path,
        [_row(record, experiments) for record in records],
        title=f"Batch: {len(records):,} experiments",
        subtitle=f"{'several metrics' if model == METRICS else model + ' model'}; source {source}; batch seed {seed}",
        counts=f"{summary}. Each experiment's report has its estimates, prior and diagnostics.",
    )
