"""Prior sensitivity: would a different, reasonable prior change the decision?

The article ends on it: "If we start with different (reasonable) priors and
end up with very different results, then it's a strong signal we need to
collect more data." :func:`sensitivity` refits a result under a **panel** of
reasonable priors — each model names its own (``prior_panel()`` of its result
type) — and reports side by side each arm's rate, lift, P(beats control) and
P(best), and the recommendation under every prior. Each decision (the
experiment's, or each segment's) gets a verdict:

* **robust**: the same decision, naming the same arm, under every reasonable prior;
* **prior-dependent**: some reasonable prior changes it — named — so more data
  is needed before acting.

"No pooling" (every arm, or cell, on its own: ``Beta(1 + successes, 1 +
failures)``) is shown as the limiting reference but not counted: not pooling
is the assumption the article argues against.

Examples
--------
>>> import abpool
>>> res = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=1)
>>> found = sensitivity(res)
>>> found.labels
['bda (this fit)', 'lognormal', 'weaker pooling', 'stronger pooling', 'no pooling']
>>> found.verdicts()["verdict"].tolist()
['robust']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from abpool import decisions
from abpool.errors import AbpoolError, InvalidArgumentError
from abpool.metric import BINARY, Metric
from abpool.panel import PanelEntry, is_no_pooling, no_pooling_entry

if TYPE_CHECKING:
    from abpool.result import Result

ROBUST, PRIOR_DEPENDENT = "robust", "prior-dependent"
THIS_FIT = " (this fit)"
NOT_COUNTED = (
    "No pooling is shown as the limiting reference and not counted in the verdict: not pooling at all is the "
    "assumption the article argues against."
)


def _answers(draws: np.ndarray, result: Result) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per cell: rate, lift and P(beats control) with intervals, P(best), expected loss; per group: the decision."""
    control = result.control_index
    tail = (1.0 - result.ci) / 2.0
    found = decisions.cell_answers(draws, control, [tail, 0.5, 1.0 - tail])
    rows, choices = [], []
    for s, segment in enumerate(result.segments or (None,)):
        for k, arm in enumerate(result.arms):
            treated = k != control
            low, middle, high = (float(value) if treated else None for value in found["lift"][:, s, k])
            rows.append(
                {
                    "segment": segment,
                    "arm": arm,
                    "is_control": not treated,
                    "rate": float(found["rate"][1, s, k]),
                    "rate_ci_low": float(found["rate"][0, s, k]),
                    "rate_ci_high": float(found["rate"][2, s, k]),
                    "lift": middle,
                    "lift_ci_low": low,
                    "lift_ci_high": high,
                    "prob_beats_control": float(found["prob_beats_control"][s, k]) if treated else None,
                    "prob_best": float(found["prob_best"][s, k]),
                    "expected_loss": float(found["expected_loss"][s, k]),
                }
            )
        decision, arm = decisions.recommend(draws[:, s, :], control, threshold=result.threshold, rope=result.rope)
        choices.append({"segment": segment, "decision": decision, "arm": None if arm is None else result.arms[arm]})
    return rows, choices


@dataclass(frozen=True)
class Sensitivity:
    """One result's answers under a panel of priors, and a verdict for each decision.

    Attributes
    ----------
    entries : list of PanelEntry
        The panel; the result's own prior first, the no-pooling reference last.
    answers : pandas.DataFrame
        One row per prior × (segment ×) arm: ``prior``, ``segment``, ``arm``,
        ``is_control``, ``rate`` (median) and its interval, ``lift`` (absolute,
        median) and its interval, ``prob_beats_control``, ``prob_best``,
        ``expected_loss``.
    choices : pandas.DataFrame
        One row per prior × decision (the experiment, or each segment):
        ``prior``, ``segment``, ``decision``, ``arm``.
    converged : dict of str to bool
        Whether each prior's fit passed its convergence checks.
    seconds : dict of str to float
        Time each prior took (0 for the result's own: it is not refitted).
    failed : dict of str to str
        Priors of the panel the model could not be fitted under (an improper
        posterior, say), with the reason; they are left out of the answers.
    control : str
    threshold : float
        The recommendation's threshold of caring.
    segmented : bool
    metric : Metric
        What the answers measure (a rate, or a mean), for their notation.
    """

    entries: list[PanelEntry]
    answers: pd.DataFrame
    choices: pd.DataFrame
    control: str
    threshold: float
    segmented: bool
    metric: Metric = BINARY
    converged: dict[str, bool] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Labels of the panel's priors, in order."""
        return [entry.label for entry in self.entries]

    @property
    def counted(self) -> list[str]:
        """Labels of the priors the verdict counts (all but the reference)."""
        return [entry.label for entry in self.entries if not entry.reference]

    def _decision(self, label: str, segment: Any) -> tuple[str, str | None]:
        rows = self.choices[self.choices["prior"] == label]
        if self.segmented:
            rows = rows[rows["segment"] == segment]
        row = rows.iloc[0]
        return str(row["decision"]), None if row["arm"] is None else str(row["arm"])

    def verdicts(self) -> pd.DataFrame:
        """Per decision: ``segment``, ``verdict``, this fit's ``decision``, ``changed_by`` (priors that change it)."""
        own = self.entries[0].label
        rows = []
        for segment in dict.fromkeys(self.choices["segment"]):
            base = self._decision(own, segment)
            changed = [label for label in self.counted if self._decision(label, segment) != base]
            rows.append(
                {
                    "segment": segment,
                    "verdict": PRIOR_DEPENDENT if changed else ROBUST,
                    "decision": decisions.decision_text(*base, self.control),
                    "changed_by": changed,
                }
            )
        return pd.DataFrame(rows, columns=["segment", "verdict", "decision", "changed_by"])

    def sentences(self, limit: int = 12) -> list[str]:
        """The verdicts in words, prior-dependent ones first; the reference's role last."""
        table = self.verdicts()
        table = pd.concat([table[table["verdict"] == PRIOR_DEPENDENT], table[table["verdict"] == ROBUST]])
        sentences = []
        for row in table.iloc[:limit].itertuples(index=False):
            where = f"{row.segment}: " if self.segmented else ""
            if row.verdict == ROBUST:
                sentences.append(
                    f"{where}robust — every reasonable prior ({', '.join(self.counted)}) gives the same decision: "
                    f"{row.decision}."
                )
                continue
            flips = "; ".join(
                f"{label} gives {decisions.decision_text(*self._decision(label, row.segment), self.control)}"
                for label in row.changed_by
            )
            sentences.append(
                f"{where}prior-dependent — {flips}, where {self.entries[0].label} gives {row.decision}. Reasonable "
                "priors disagree, so the data do not settle it yet: collect more data before acting."
            )
        if len(table) > limit:
            dependent = int((table["verdict"] == PRIOR_DEPENDENT).sum())
            sentences.append(
                f"… {len(table) - limit:,} more decisions; over all {len(table):,}: {dependent:,} prior-dependent."
            )
        for label, reason in self.failed.items():
            sentences.append(f"{label} could not be fitted, so it is left out: {reason}.")
        unconverged = [label for label, ok in self.converged.items() if not ok]
        if unconverged:
            sentences.append(
                f"The fit under {', '.join(unconverged)} did not converge: its answers are unreliable; refit with "
                "more draws and tuning before reading them."
            )
        return [*sentences, NOT_COUNTED]

    @property
    def robust(self) -> bool:
        """Whether every decision is robust."""
        return bool((self.verdicts()["verdict"] == ROBUST).all())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the panel, every answer and decision, the verdicts, times and convergence."""
        from abpool.io import to_jsonable

        return to_jsonable(
            {
                "panel": [entry.describe() for entry in self.entries],
                "control": self.control,
                "threshold": self.threshold,
                "segmented": self.segmented,
                "metric": self.metric.describe(),
                "answers": self.answers.to_dict("records"),
                "decisions": self.choices.to_dict("records"),
                "verdicts": self.verdicts().to_dict("records"),
                "robust": self.robust,
                "sentences": self.sentences(limit=len(self.choices)),
                "converged": self.converged,
                "failed": self.failed,
                "seconds": {label: round(value, 3) for label, value in self.seconds.items()},
            }
        )

    def __repr__(self) -> str:
        verdicts = self.verdicts()["verdict"].value_counts()
        counts = ", ".join(f"{count} {verdict}" for verdict, count in verdicts.items())
        return f"<Sensitivity over {', '.join(self.labels)}: {counts}>"


def resolve_panel(result: Result, panel: Sequence[Any] | None = None) -> list[PanelEntry]:
    """The panel to fit: the result's own prior first, then the model's panel or the user's, then no pooling.

    ``panel`` holds prior objects, panel names, or specs ``"NAME:key=value,..."``
    (see the model's ``panel_entry``); ``"none"`` names the no-pooling
    reference, which is added when absent.
    """
    kind = type(result)
    if panel is None:
        entries = kind.prior_panel()
    else:
        if isinstance(panel, str) or not isinstance(panel, Sequence) or not panel:
            raise InvalidArgumentError(f"panel must be a non-empty list of priors (names or objects), got {panel!r}")
        entries = [None if is_no_pooling(item) else kind.panel_entry(item) for item in panel]
    own = kind.panel_entry(result.prior)
    resolved = [PanelEntry(own.label + THIS_FIT, result.prior, own.why)]
    for entry in entries:
        if entry is not None and entry.prior != result.prior and entry.prior not in [e.prior for e in resolved]:
            resolved.append(entry)
    resolved.append(no_pooling_entry("arm" if not result.segmented else "segment × arm cell", kind.no_pooling))
    labels = [entry.label for entry in resolved]
    if len(set(labels)) < len(labels):
        raise InvalidArgumentError(f"panel must name each prior once, got {', '.join(labels)}")
    return resolved


def sensitivity(
    result: Result,
    panel: Sequence[Any] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Sensitivity:
    """Refit ``result`` under every prior of ``panel`` and compare the answers and decisions.

    Only what is needed is refitted: the result's own prior is reused, and the
    no-pooling reference is drawn directly. Every refit keeps the result's
    settings and seed, so an entry equal to a single fit's prior gives that
    fit's numbers exactly.

    Parameters
    ----------
    result : Result
        Any model's result.
    panel : list, optional
        Prior objects, panel names or specs ``"NAME:key=value,..."``; default:
        the model's panel.
    progress : callable, optional
        Called with 1 after each prior.

    Returns
    -------
    Sensitivity
    """
    from abpool.result import model_entry

    entries = resolve_panel(result, panel)
    entry = model_entry(result.model)
    skipped = ("prior", "prior_scale", "split", "seed", "control")
    settings = {k: v for k, v in result.settings().items() if k in entry.options and k not in skipped}
    columns: dict[str, Any] = {"control": result.control}
    if result.segmented:
        columns["segment"] = list(result.cells.segment_columns)
    answers: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    converged: dict[str, bool] = {}
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    for item in list(entries):
        start = time.perf_counter()
        if item.prior is None:
            draws = result.no_pooling_draws(result._rates.shape[0], np.random.default_rng([result.seed, 3]))
            converged[item.label] = True
        else:
            try:
                fitted = (
                    result
                    if item.prior == result.prior
                    else entry.fit(
                        result.cells, **columns, **settings, prior=item.prior, seed=result.seed, on_unconverged="ignore"
                    )
                )
            except AbpoolError as exc:
                # One prior the data cannot support (an improper posterior) should not hide the others' answers.
                failed[item.label] = " ".join(str(exc).split())
                entries.remove(item)
                if progress is not None:
                    progress(1)
                continue
            draws = fitted._rates
            converged[item.label] = bool(fitted.diagnostics.converged)
        rows, chosen = _answers(draws, result)
        answers += [{"prior": item.label, **row} for row in rows]
        choices += [{"prior": item.label, **row} for row in chosen]
        seconds[item.label] = time.perf_counter() - start
        if progress is not None:
            progress(1)
    answers_frame = pd.DataFrame(answers)
    choices_frame = pd.DataFrame(choices)
    for frame in (answers_frame, choices_frame):
        # Labels stay None (not NaN) where a row has no segment or arm.
        for column in ("segment", "arm", "lift", "lift_ci_low", "lift_ci_high", "prob_beats_control"):
            if column in frame:
                frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return Sensitivity(
        entries=entries,
        answers=answers_frame,
        choices=choices_frame,
        control=result.control,
        threshold=result.threshold,
        segmented=result.segmented,
        metric=result.metric,
        converged=converged,
        seconds=seconds,
        failed=failed,
    )
