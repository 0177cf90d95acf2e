"""The result of the segments model: per-segment rates, lifts and decisions."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from abpool import decisions
from abpool._version import __version__
from abpool.data import Cells
from abpool.errors import InvalidArgumentError
from abpool.inference import Diagnostics
from abpool.io import to_jsonable
from abpool.models.segments import SegmentLayout, logit_estimates
from abpool.priors import SegmentsPrior

MODEL_NAME = "segments: varying-intercept, varying-slope logistic regression"

SEGMENT_SUMMARY_COLUMNS = {
    "segment": "segment label (several segment columns joined with ' / ')",
    "arm": "treatment arm",
    "control": "control arm",
    "trials_control": "users in the segment's control cell",
    "successes_control": "successes in the segment's control cell",
    "trials_treatment": "users in the segment's treatment cell",
    "successes_treatment": "successes in the segment's treatment cell",
    "observed_control_rate": "successes / trials in the control cell",
    "observed_treatment_rate": "successes / trials in the treatment cell",
    "control_rate": "posterior mean of the control rate, invlogit(a_s) (the article's a_inv)",
    "control_rate_ci_low": "credible interval of the control rate, lower end",
    "control_rate_ci_high": "credible interval of the control rate, upper end",
    "treatment_rate": "posterior mean of the treatment rate, invlogit(a_s + b_sk) (the article's fin)",
    "treatment_rate_ci_low": "credible interval of the treatment rate, lower end",
    "treatment_rate_ci_high": "credible interval of the treatment rate, upper end",
    "lift": "posterior mean of treatment rate - control rate",
    "lift_ci_low": "credible interval of the absolute lift, lower end",
    "lift_ci_high": "credible interval of the absolute lift, upper end",
    "relative_lift": "posterior mean of treatment rate / control rate - 1",
    "relative_lift_ci_low": "credible interval of the relative lift, lower end",
    "relative_lift_ci_high": "credible interval of the relative lift, upper end",
    "prob_better": "P(treatment rate > control rate) = P(b_sk > 0)",
    "expected_loss": "E[max(control rate - treatment rate, 0)]: rate lost, on average, by shipping the treatment",
    "pooling": "how far the segment's effect is pulled to the population: E[v / (v + sigma_b²)], 0 none, 1 all",
}


@dataclass(frozen=True)
class SegmentsResult:
    """Posterior of the segments model. Create one with :func:`abpool.analyze_segments`.

    Attributes
    ----------
    cells : Cells
        The data as analysed.
    layout : SegmentLayout
        Segments and arms (control first) as index arrays.
    prior : SegmentsPrior
        Priors used.
    correlated : bool
        Whether intercepts and slopes were drawn jointly (LKJ prior).
    parameterisation : str
        Coordinates the sampler moved in: ``"conditioned"`` (the default),
        ``"centred"`` or ``"non-centred"``.
    sampler : str
        ``"nutpie"`` or ``"pymc"``.
    seed : int
        Random seed used.
    idata : arviz.InferenceData
        The draws (posterior and sample stats) with provenance attributes.
    diagnostics : Diagnostics
        Divergences, R-hat, ESS.
    ci : float
        Credible level of intervals.
    """

    cells: Cells
    layout: SegmentLayout
    prior: SegmentsPrior
    correlated: bool
    parameterisation: str
    sampler: str
    seed: int
    idata: Any
    diagnostics: Diagnostics
    ci: float = 0.95
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    # ------------------------------------------------------------------ draws
    def _flat(self, name: str) -> NDArray:
        values = self.idata.posterior[name].values
        return values.reshape(-1, *values.shape[2:])

    @cached_property
    def control_draws(self) -> NDArray:
        """Control rate draws, shape ``(samples, segments)``."""
        return expit(self._flat("a"))

    @cached_property
    def treatment_draws(self) -> NDArray:
        """Treatment rate draws, shape ``(samples, segments, treatments)``."""
        return expit(self._flat("a")[:, :, None] + self._flat("b"))

    def _locate(self, segment: str | int, arm: str | int | None) -> tuple[int, int]:
        segments, treatments = self.layout.segments, self.layout.treatments
        if isinstance(segment, int) and 0 <= segment < len(segments):
            s = segment
        elif str(segment) in segments:
            s = segments.index(str(segment))
        else:
            raise InvalidArgumentError(f"unknown segment {segment!r}; segments are: {', '.join(segments[:20])}")
        if arm is None:
            k = 0
        elif isinstance(arm, int) and 0 <= arm < len(treatments):
            k = arm
        elif str(arm) in treatments:
            k = treatments.index(str(arm))
        else:
            raise InvalidArgumentError(f"unknown treatment arm {arm!r}; treatment arms are: {', '.join(treatments)}")
        return s, k

    def prob_better(self, segment: str | int, arm: str | int | None = None) -> float:
        """P(treatment ``arm`` beats the control in ``segment``) (first treatment arm by default).

        Examples
        --------
        >>> import abpool
        >>> from abpool.datasets import make_dataframe
        >>> res = abpool.analyze_segments(make_dataframe(100, [30, 50, 55, 60]), segment="country",
        ...                               arm="treated", outcome="success", seed=1, draws=500)
        >>> res.prob_better("Canada") > 0.9
        True
        """
        s, k = self._locate(segment, arm)
        return float(np.mean(self._flat("b")[:, s, k] > 0))

    # --------------------------------------------------------------- summaries
    @cached_property
    def _summary(self) -> pd.DataFrame:
        layout = self.layout
        n, y = layout.cell_counts()
        control = self.control_draws
        treatment = self.treatment_draws
        sigma_b = self._flat("sigma_b")
        _, _, _, b_var = logit_estimates(layout)
        rows = []
        for s, segment in enumerate(layout.segments):
            c_low, c_high = decisions.equal_tailed_interval(control[:, [s]], self.ci)
            for k, arm in enumerate(layout.treatments):
                t = treatment[:, s, k]
                c = control[:, s]
                diff = t - c
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = t / c - 1.0
                t_low, t_high = decisions.equal_tailed_interval(t[:, None], self.ci)
                d_low, d_high = decisions.equal_tailed_interval(diff[:, None], self.ci)
                r_low, r_high = decisions.equal_tailed_interval(rel[:, None], self.ci)
                var = b_var[s, k]
                pooling = 1.0 if not np.isfinite(var) else float(np.mean(var / (var + sigma_b[:, k] ** 2)))
                with np.errstate(divide="ignore", invalid="ignore"):
                    obs_c = y[s, 0] / n[s, 0] if n[s, 0] else np.nan
                    obs_t = y[s, k + 1] / n[s, k + 1] if n[s, k + 1] else np.nan
                rows.append(
                    {
                        "segment": segment,
                        "arm": arm,
                        "control": layout.control,
                        "trials_control": int(n[s, 0]),
                        "successes_control": int(y[s, 0]),
                        "trials_treatment": int(n[s, k + 1]),
                        "successes_treatment": int(y[s, k + 1]),
                        "observed_control_rate": obs_c,
                        "observed_treatment_rate": obs_t,
                        "control_rate": float(c.mean()),
                        "control_rate_ci_low": float(c_low[0]),
                        "control_rate_ci_high": float(c_high[0]),
                        "treatment_rate": float(t.mean()),
                        "treatment_rate_ci_low": float(t_low[0]),
                        "treatment_rate_ci_high": float(t_high[0]),
                        "lift": float(diff.mean()),
                        "lift_ci_low": float(d_low[0]),
                        "lift_ci_high": float(d_high[0]),
                        "relative_lift": float(rel.mean()),
                        "relative_lift_ci_low": float(r_low[0]),
                        "relative_lift_ci_high": float(r_high[0]),
                        "prob_better": float(np.mean(diff > 0)),
                        "expected_loss": float(np.mean(np.maximum(-diff, 0.0))),
                        "pooling": pooling,
                    }
                )
        return pd.DataFrame(rows, columns=list(SEGMENT_SUMMARY_COLUMNS))

    def summary(self) -> pd.DataFrame:
        """One row per segment × treatment arm; columns in ``SEGMENT_SUMMARY_COLUMNS``."""
        return self._summary.copy()

    def classical(self) -> pd.DataFrame:
        """Treatment vs control within each segment, classically, beside ``P(treatment > control)``.

        Columns are those of :func:`abpool.classical.classical_comparisons`
        (raw, Bonferroni, Holm and Benjamini-Hochberg p-values over all
        segments and arms) plus ``prob_greater``, the posterior probability that
        ``arm_i`` (the treatment) beats ``arm_j`` (the control) in that segment.
        """
        from abpool.classical import classical_comparisons

        table = classical_comparisons(self.cells, control=self.layout.control)
        probs = self._summary.set_index(["segment", "arm"])["prob_better"]
        keys = list(zip(table["segment"], table["arm_i"], strict=True))
        table["prob_greater"] = [probs.get(key, np.nan) for key in keys]
        return table

    @cached_property
    def _new_segment(self) -> tuple[NDArray, NDArray]:
        """Draws of (control rate, treatment rates) for a segment not in the data."""
        rng = np.random.default_rng([self.seed, 1])
        mu_a, sigma_a = self._flat("mu_a"), self._flat("sigma_a")
        mu_b, sigma_b = self._flat("mu_b"), self._flat("sigma_b")
        size = mu_a.shape[0]
        k = mu_b.shape[1]
        z = rng.standard_normal((size, k + 1))
        if self.correlated:
            corr = self._flat("correlation")
            stds = np.column_stack([sigma_a, sigma_b])
            cov = corr * stds[:, :, None] * stds[:, None, :]
            chol = np.linalg.cholesky(cov + 1e-12 * np.eye(k + 1))
            effects = np.einsum("nij,nj->ni", chol, z)
        else:
            effects = z * np.column_stack([sigma_a, sigma_b])
        a_new = mu_a + effects[:, 0]
        b_new = mu_b + effects[:, 1:]
        return expit(a_new), expit(a_new[:, None] + b_new)

    def population(self) -> dict[str, Any]:
        """Population-level answers, per treatment arm where they depend on it.

        ``mu_b``: the mean treatment effect on the log-odds scale, with its
        interval and ``P(mu_b > 0)``; ``sigma_b``: how much segments' effects
        differ; ``new_segment``: the predicted lift (rate scale) for a segment
        not in the data, drawn from the population.
        """
        mu_b, sigma_b = self._flat("mu_b"), self._flat("sigma_b")
        new_control, new_treatment = self._new_segment
        arms = self.layout.treatments
        lifts = new_treatment - new_control[:, None]
        return {
            "control_rate": _interval(expit(self._flat("mu_a")), self.ci),
            "sigma_a": _interval(self._flat("sigma_a"), self.ci),
            "mu_b": {arm: _interval(mu_b[:, k], self.ci) for k, arm in enumerate(arms)},
            "prob_mu_b_positive": {arm: float(np.mean(mu_b[:, k] > 0)) for k, arm in enumerate(arms)},
            "sigma_b": {arm: _interval(sigma_b[:, k], self.ci) for k, arm in enumerate(arms)},
            "new_segment": {
                arm: {"lift": _interval(lifts[:, k], self.ci), "prob_better": float(np.mean(lifts[:, k] > 0))}
                for k, arm in enumerate(arms)
            },
        }

    # ----------------------------------------------------------- serialising
    def to_dict(self) -> dict[str, Any]:
        """Everything in the result as plain JSON-ready data."""
        population = self.population()
        diag = self.diagnostics.to_dict()
        return to_jsonable(
            {
                "model": MODEL_NAME,
                "abpool_version": __version__,
                "prior": self.prior.describe(),
                "correlated": self.correlated,
                "sampler": self.sampler,
                "seed": self.seed,
                "ci": self.ci,
                "control": self.layout.control,
                "data": {**self.cells.describe(), "table": self.cells.table.to_dict("list")},
                "parameterisation": self.parameterisation,
                "segments": self._summary.to_dict("records"),
                "population": population,
                "classical": self.classical().to_dict("records"),
                "diagnostics": diag,
                "created": self.created,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        """The result as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, directory: str | Path, *, report: bool = True) -> Path:
        """Write ``posterior.nc`` (draws with provenance), ``summary.json`` and ``report.html``, atomically.

        :func:`abpool.load` reads the directory back; ``abpool report DIR``
        re-renders the report from it. Returns the directory.
        """
        from abpool.store import save_result

        return save_result(self, directory, report=report)

    # ---------------------------------------------------------------- figures
    def plot_forest(self) -> Any:
        """Per-segment rates and lift (see :func:`abpool.plots.plot_segments_forest`)."""
        from abpool.plots import plot_segments_forest

        return plot_segments_forest(self.summary())

    def plot_shrinkage(self) -> Any:
        """Observed lift → pooled estimate per segment (see :func:`abpool.plots.plot_segments_shrinkage`)."""
        from abpool.plots import plot_segments_shrinkage

        return plot_segments_shrinkage(self)

    def plot_convergence(self) -> Any:
        """Per-chain densities and rank plots (see :func:`abpool.plots.plot_convergence`)."""
        from abpool.plots import plot_convergence

        return plot_convergence(self, max_rates=4)

    def to_html(self) -> str:
        """The full self-contained HTML report (figures inline), as written by :meth:`save`."""
        from abpool.report import render_report

        return render_report(self)

    def _repr_html_(self) -> str:
        # Notebooks get the decisions and tables only: figures would make every display slow.
        from abpool.report import render_fragment

        return render_fragment(self)


def _interval(values: NDArray, level: float) -> dict[str, float]:
    low, high = decisions.equal_tailed_interval(np.asarray(values)[:, None], level)
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "ci_low": float(low[0]),
        "ci_high": float(high[0]),
    }
