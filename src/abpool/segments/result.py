"""The result of the segments model: the contract's answers per segment, plus the population level."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from abpool import _format as fmt
from abpool._special import expit
from abpool.outputs import ReportableResult
from abpool.panel import PanelEntry
from abpool.result import FigureSpec, common_from_saved
from abpool.segments.layout import SegmentLayout, layout_from_cells, logit_estimates
from abpool.segments.model import FORM_DESCRIPTIONS, FORMS
from abpool.segments.priors import SegmentsPrior, segments_panel, segments_panel_entry

MODEL_NAME = "segments"
MAX_ROWS_IN_FIGURES = 40


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class SegmentsResult(ReportableResult):
    """Posterior of the varying-intercept, varying-slope model. Create one with :func:`abpool.analyze_segments`.

    Rows of :meth:`summary` are (segment, arm), the control included: the
    control's rate is the article's ``a_inv``, a treatment's its ``fin``. The
    draws in :attr:`tree` are ``mu_a``, ``sigma_a``, ``a`` (segment),
    ``mu_b``, ``sigma_b`` (treatment) and ``b`` (segment, treatment) on the
    log-odds scale.

    Attributes
    ----------
    correlated : bool
        Whether intercepts and slopes were drawn jointly (LKJ prior).
    parameterisation : str
        Coordinates the sampler moved in: ``"conditioned"`` (the default),
        ``"centred"`` or ``"non-centred"``.
    sampler : str
        ``"nutpie"`` or ``"pymc"``.
    tune : int
        Tuning steps per chain.
    target_accept : float
        NUTS target acceptance of the first attempt.

    Examples
    --------
    >>> import abpool
    >>> from abpool.datasets import make_dataframe
    >>> res = abpool.analyze_segments(make_dataframe(100, [30, 50, 55, 60]), segment="country",
    ...                               arm="treated", outcome="success", seed=1, draws=500)
    >>> res.prob_beats_control(segment="Canada") > 0.9
    True
    """

    model: ClassVar[str] = MODEL_NAME
    description: ClassVar[str] = "varying-intercept, varying-slope logistic regression (experiment by segment)"

    prior: SegmentsPrior
    correlated: bool = False
    parameterisation: str = "conditioned"
    sampler: str = "nutpie"
    tune: int = 1_000
    target_accept: float = 0.95

    # ------------------------------------------------------------------ draws
    @cached_property
    def layout(self) -> SegmentLayout:
        """Segments and arms (control first) as index arrays."""
        return layout_from_cells(self.cells, self.control)

    @property
    def arms(self) -> tuple[str, ...]:
        return self.layout.arms

    @classmethod
    def prior_panel(cls) -> list[PanelEntry]:
        return segments_panel()

    @classmethod
    def panel_entry(cls, item: Any) -> PanelEntry:
        return segments_panel_entry(item)

    @property
    def segments(self) -> tuple[str, ...]:
        return self.layout.segments

    def _flat(self, name: str) -> NDArray[np.float64]:
        values = self._draws["posterior"][name].values
        return values.reshape(-1, *values.shape[2:])

    def _compute_rate_draws(self) -> NDArray[np.float64]:
        a = self._flat("a")
        return expit(np.concatenate([a[:, :, None], a[:, :, None] + self._flat("b")], axis=2))

    def _cell_counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return self.layout.cell_counts()

    def _pooling(self) -> NDArray[np.float64]:
        _, a_var, _, b_var = logit_estimates(self.layout)
        spreads = np.concatenate([self._flat("sigma_a")[:, None], self._flat("sigma_b")], axis=1) ** 2
        variances = np.concatenate([a_var[:, None], b_var], axis=1)
        weight = np.empty_like(variances)
        with np.errstate(invalid="ignore"):
            # A block of segments at a time: the draws × segments × arms temporaries stay in the cache.
            for start in range(0, variances.shape[0], 256):
                block = variances[start : start + 256][None]
                weight[start : start + 256] = (block / (block + spreads[:, None, :])).mean(axis=0)
        # A missing cell has an infinite variance: the population decides everything.
        return np.where(np.isfinite(variances), weight, 1.0)

    @cached_property
    def _new_segment(self) -> tuple[NDArray, NDArray]:
        """Draws of (control rate, treatment rates) for a segment not in the data."""
        rng = np.random.default_rng([self.seed, 1])
        mu_a, sigma_a = self._flat("mu_a"), self._flat("sigma_a")
        mu_b, sigma_b = self._flat("mu_b"), self._flat("sigma_b")
        size, k = mu_a.shape[0], mu_b.shape[1]
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

    def _population_rows(self) -> list[dict[str, Any]]:
        mu_b, sigma_b = self._flat("mu_b"), self._flat("sigma_b")
        new_control, new_treatment = self._new_segment
        rows: list[dict[str, Any]] = [
            {
                "quantity": "control_rate",
                "description": "control rate of a typical segment, invlogit(mu_a)",
                "draws": expit(self._flat("mu_a")),
            },
            {
                "quantity": "sigma_a",
                "description": "spread of the segments' control log-odds, sigma_a",
                "draws": self._flat("sigma_a"),
            },
        ]
        for k, arm in enumerate(self.layout.treatments):
            rows += [
                {
                    "quantity": "mu_b",
                    "arm": arm,
                    "description": f"mean effect of arm {arm} across segments (log-odds), mu_b",
                    "draws": mu_b[:, k],
                    "effect": True,
                },
                {
                    "quantity": "sigma_b",
                    "arm": arm,
                    "description": f"spread of arm {arm}'s effect across segments (log-odds), sigma_b",
                    "draws": sigma_b[:, k],
                },
                {
                    "quantity": "new_segment_lift",
                    "arm": arm,
                    "description": f"lift of arm {arm} in a new segment from the same population (rate scale)",
                    "draws": new_treatment[:, k] - new_control,
                    "effect": True,
                },
            ]
        return rows

    # ------------------------------------------------------------------ words
    def question(self) -> str:
        treatments = self.layout.treatments
        what = "the treatment" if len(treatments) == 1 else f"each of the treatments {', '.join(treatments)}"
        return (
            f"Did {what} improve conversion over the control ({self.control}) in each of the "
            f"{len(self.segments)} segments ({fmt.names_list(list(self.segments))}), and by how much?"
        )

    def method_statement(self) -> str:
        return (
            "One varying-intercept, varying-slope logistic regression answers for every segment at once: each "
            "segment has its own control rate and its own treatment effect, and both are drawn from common Normal "
            "distributions, so a segment with little data borrows strength from the others, and every probability "
            "below comes from one joint posterior."
        )

    def population_sentences(self) -> list[str]:
        population = self._population.set_index(["quantity", "arm"])
        several = len(self.layout.treatments) > 1
        sentences = []
        for arm in self.layout.treatments:
            name = f"treatment {arm}" if several else "the treatment"
            mu, new = population.loc[("mu_b", arm)], population.loc[("new_segment_lift", arm)]
            sentences.append(
                f"Across segments, the average effect of {name} is positive with probability "
                f"{fmt.pct(mu.prob_positive)}; in a new segment from the same population it would help with "
                f"probability {fmt.pct(new.prob_positive)} (lift {fmt.points(new['median'])})."
            )
        return sentences

    def prior_facts(self) -> list[tuple[str, str]]:
        correlation = (
            f"LKJ({self.prior.lkj_eta:g}) on intercept–slope correlation"
            if self.correlated
            else "intercepts and slopes independent"
        )
        return [
            ("prior", str(self.prior)),
            ("correlation", correlation),
            ("parameterisation", FORM_DESCRIPTIONS[self.parameterisation]),
            ("sampler", f"{self.sampler} NUTS"),
        ]

    def prior_statement(self) -> str:
        return (
            "The HalfNormal prior on the spreads is conservative: it favours pooling, a guard against the incentives "
            "to find effects that are not there. The priors are stated so they can be argued with: refit with "
            "--prior flat or --prior conservative (or --prior-scale) and compare. If reasonable priors agree, the "
            "data speak; if they disagree, collect more data."
        )

    def model_settings(self) -> dict[str, Any]:
        return {
            "prior_scale": self.prior.scale,
            "correlated": self.correlated,
            "parameterisation": self.parameterisation,
            "sampler": self.sampler,
            "draws": self.diagnostics.draws,
            "tune": self.tune,
            "chains": self.diagnostics.chains,
            "target_accept": self.target_accept,
        }

    # ------------------------------------------------------------------ figures
    def figure_specs(self) -> list[FigureSpec]:
        from abpool import plots

        rows = len(self.segments) * len(self.layout.treatments)
        if rows > MAX_ROWS_IN_FIGURES:
            return []
        level = f"{self.ci:.0%}"
        return [
            FigureSpec(
                "Rates and lift by segment",
                "forest plot of control and treatment rates and of the lift per segment",
                f"Left: control (hollow) and treatment (filled) rates with {level} intervals. Right: the lift in "
                "percentage points, zero "
                "dashed, with the probability that the treatment beats the control.",
                lambda: plots.plot_forest(self),
            ),
            FigureSpec(
                "Shrinkage of the lifts",
                "each segment's observed lift and its pooled estimate",
                f"Hollow: the lift observed in the segment alone; filled: the model's estimate; grey: its {level} "
                "interval; dashed: the overall observed lift. Marker area grows with the segment's users.",
                lambda: plots.plot_shrinkage(self),
            ),
        ]

    def convergence_dataset(self, max_rates: int = 4) -> Any:
        posterior = self.tree["posterior"].to_dataset()
        # The population parameters first (their funnel is where trouble shows), then a few segments' effects.
        return posterior[["mu_a", "sigma_a", "mu_b", "sigma_b"]].assign(
            b=posterior["b"].isel(segment=slice(0, max_rates))
        )

    # ------------------------------------------------------------------ saving
    @classmethod
    def from_saved(cls, payload: dict[str, Any], tree: Any) -> SegmentsResult:
        from abpool.errors import InvalidDataError

        fields = common_from_saved(payload, tree)
        try:
            settings = payload["settings"]
            prior = SegmentsPrior.from_description(payload["prior"])
            parameterisation = str(settings["parameterisation"])
            if parameterisation not in FORMS:
                raise ValueError(f"unknown parameterisation {parameterisation!r}")
            result = cls(
                prior=prior,
                correlated=bool(settings["correlated"]),
                parameterisation=parameterisation,
                sampler=str(settings["sampler"]),
                tune=int(settings["tune"]),
                target_accept=float(settings["target_accept"]),
                **fields,
            )
            result.layout  # noqa: B018  (checks that the saved control is one of the arms)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"the saved result is incomplete ({exc!r}); save it again") from None
        return result
