"""The result of the means model: the contract's answers about arm means, plus what only this model says."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from abpool import _format as fmt
from abpool.continuous.priors import ContinuousPrior, prior_from_description
from abpool.data.moments import ArmMoments, normal_approximation_warnings
from abpool.means.panel import means_panel, means_panel_entry
from abpool.metric import Metric
from abpool.outputs import ReportableResult
from abpool.panel import PanelEntry
from abpool.result import FigureSpec, common_from_saved

MODEL_NAME = "means"
MAX_ARMS_IN_FIGURES = 40
MAX_DENSITIES = 8

# The contract's summary columns under the names a reader of a mean expects.
MEAN_COLUMNS = {
    "trials": "n",
    "observed_rate": "observed_mean",
    "rate": "mean",
    "rate_mean": "posterior_mean",
    "rate_sd": "mean_sd",
    "rate_ci_low": "mean_ci_low",
    "rate_ci_high": "mean_ci_high",
    "rate_hdi_low": "mean_hdi_low",
    "rate_hdi_high": "mean_hdi_high",
}

MEAN_VOCABULARY: dict[str, str] = {
    "n": "users (units) in the arm",
    "observed_mean": "the arm's sample mean (of capped values when --cap was given)",
    "observed_sd": "the arm's sample standard deviation (divisor n - 1)",
    "std_error": "standard error of the arm's mean, observed_sd / sqrt(n): the model treats it as known",
    "mean": "posterior median of the arm's true mean: the point estimate shown everywhere",
    "posterior_mean": "posterior mean of the arm's true mean",
    "mean_sd": "posterior standard deviation of the arm's true mean",
    "mean_ci_low": "equal-tailed credible interval of the mean at level ci, lower end",
    "mean_ci_high": "equal-tailed credible interval of the mean at level ci, upper end",
    "mean_hdi_low": "highest-density interval of the mean at level ci, lower end",
    "mean_hdi_high": "highest-density interval of the mean at level ci, upper end",
    "pooling": "how far the estimate is pulled toward the population mean mu: E[sigma_j^2 / (sigma_j^2 + tau^2)]",
}


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class MeansResult(ReportableResult):
    """Posterior of the hierarchical normal model of a continuous metric's arm means.

    Create one with :func:`abpool.analyze_means`. Everything the contract
    answers (:class:`abpool.result.Result`) is available, in the metric's
    units: :meth:`summary` names its columns ``n``, ``observed_mean``,
    ``mean``, ``mean_ci_low``… (:data:`MEAN_VOCABULARY`); lifts, P(beats
    control), P(best) and expected loss are those of the means. The draws in
    :attr:`tree` are ``mean`` (chain, draw, arm), ``mu`` and ``tau``.

    Attributes
    ----------
    engine : str
        ``"exact"`` (a grid over tau, independent draws) or ``"mcmc"`` (NUTS).
    tune : int or None
        MCMC tuning steps per chain (None for the exact engine).

    Examples
    --------
    >>> import pandas as pd, abpool
    >>> stats = pd.DataFrame({"arm": ["A", "B", "C"], "n": [400, 400, 400],
    ...                       "mean": [10.0, 10.4, 11.0], "sd": [4.0, 4.0, 4.0]})
    >>> res = abpool.analyze_means(stats, seed=1)
    >>> res.summary()[["arm", "n", "observed_mean"]].values.tolist()
    [['A', 400, 10.0], ['B', 400, 10.4], ['C', 400, 11.0]]
    >>> res.prob_greater("C", "A") > 0.95
    True
    """

    model: ClassVar[str] = MODEL_NAME
    description: ClassVar[str] = "hierarchical normal model of arm means (continuous metric)"
    column_names: ClassVar[dict[str, str]] = MEAN_COLUMNS
    no_pooling: ClassVar[str] = "Normal(sample mean, standard error²)"

    cells: ArmMoments
    prior: ContinuousPrior
    engine: str = "exact"
    tune: int | None = None

    # ------------------------------------------------------------------ data
    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.cells.table["arm"])

    @cached_property
    def metric(self) -> Metric:  # type: ignore[override]
        return Metric.mean(self.cells.value_column, self.cells.std_errors)

    @property
    def resolved_prior(self) -> ContinuousPrior:
        """The prior with its scale set from the data (the default scale is the RMS standard error)."""
        return self.prior.resolve(self.cells.std_errors)

    def _posterior(self, name: str) -> NDArray[np.float64]:
        return self.tree["posterior"][name].values

    def _compute_rate_draws(self) -> NDArray[np.float64]:
        means = self.tree["posterior"]["mean"].transpose("chain", "draw", "arm").values
        return means.reshape(-1, 1, means.shape[-1])

    def _cell_sizes(self) -> NDArray[np.int64]:
        return self.cells.table["n"].to_numpy(dtype=np.int64)[None, :]

    def _observed_columns(self) -> dict[str, NDArray]:
        table = self.cells.table
        return {
            "trials": table["n"].to_numpy(dtype=np.int64)[None, :],
            "observed_rate": table["mean"].to_numpy(dtype=float)[None, :],
            "observed_sd": self.cells.sds[None, :],
            "std_error": self.cells.std_errors[None, :],
        }

    def grand_value(self, segment: str | int | None = None) -> float:
        """The grand mean: every user's value averaged, all arms together."""
        self.segment_index(segment)
        return self.cells.grand_mean

    def grand_rate(self, segment: str | int | None = None) -> float:
        """The grand mean (the contract's name for the value estimates are pulled toward)."""
        return self.grand_value(segment)

    def _pooling(self) -> NDArray[np.float64]:
        tau = self._posterior("tau").reshape(-1, 1)
        variance = self.cells.std_errors[None, :] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(tau > 0, variance / (variance + tau**2), 1.0)
        return weight.mean(axis=0)[None, :]

    def _population_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "quantity": "mu",
                "description": "population mean mu: where pooled estimates are pulled to",
                "draws": self._posterior("mu"),
            },
            {
                "quantity": "tau",
                "description": "spread tau of the arms' true means (small = strong pooling)",
                "draws": self._posterior("tau"),
            },
        ]

    def no_pooling_draws(self, size: int, rng: np.random.Generator) -> NDArray[np.float64]:
        mean = self.cells.table["mean"].to_numpy(dtype=float)
        return rng.normal(mean, self.cells.std_errors, size=(size, 1, mean.size))

    @classmethod
    def prior_panel(cls) -> list[PanelEntry]:
        return means_panel()

    @classmethod
    def panel_entry(cls, item: Any) -> PanelEntry:
        return means_panel_entry(item)

    def _classical_records(self) -> list[dict[str, Any]]:
        from abpool.classical import welch_records

        return welch_records(self.cells)

    def _classical_columns(self) -> dict[str, str]:
        from abpool.classical import WELCH_COLUMNS

        return WELCH_COLUMNS

    # ------------------------------------------------------------------ words
    def question(self) -> str:
        total = int(self.cells.table["n"].sum())
        return (
            f"Which of the {len(self.arms)} arms ({fmt.names_list(list(self.arms))}) has the highest "
            f"{self.metric.label}, and by how much does each differ from the control, {self.control}? "
            f"All {total:,} users together: a grand mean of {self.metric.value(self.grand_value())}."
        )

    def method_statement(self) -> str:
        return (
            "One hierarchical model answers every comparison at once: each arm's true mean is drawn from a common "
            "Normal(mu, tau²) population, and each arm's sample mean measures it with its own standard error, so "
            "each estimate is pulled toward the population mean as much as its noise deserves (BDA3 §5.4–5.5)."
        )

    def prior_facts(self) -> list[tuple[str, str]]:
        resolved = self.resolved_prior
        kind = "proper" if resolved.proper else "improper (the posterior is proper with three arms or more)"
        engine = (
            "exact: a grid over tau, then mu and the arm means from their normal conditionals (independent draws)"
            if self.engine == "exact"
            else "mcmc: NUTS over mu, tau and the arm means"
        )
        facts = [
            ("prior", str(resolved)),
            ("kind", kind),
            ("arm means", "each arm's true mean ~ Normal(mu, tau²); its sample mean ~ Normal(true mean, se²)"),
            ("engine", engine),
        ]
        if self.cells.cap:
            cap = self.cells.cap
            facts.append(
                (
                    "capping",
                    f"values above the {cap['quantile']:g} quantile ({cap['value']:,.6g}) lowered to it; "
                    f"{cap['capped']:,} values capped",
                )
            )
        return facts

    def prior_statement(self) -> str:
        return (
            "The prior on tau is stated so that it can be argued with: refit with another (for example --prior "
            "half-normal) and compare. If reasonable priors give similar answers, the data speak; if they disagree, "
            "collect more data."
        )

    def population_sentences(self) -> list[str]:
        return normal_approximation_warnings(self.cells)

    def model_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"engine": self.engine, "draws": self.diagnostics.draws}
        if self.engine == "mcmc":
            settings |= {"chains": self.diagnostics.chains, "tune": self.tune}
        scale = getattr(self.prior, "scale", None)
        if scale is not None:
            settings["prior_scale"] = scale
        if self.cells.cap:
            settings["cap"] = self.cells.cap["quantile"]
        return settings

    # ------------------------------------------------------------------ figures
    def figure_specs(self) -> list[FigureSpec]:
        from abpool import plots

        if len(self.arms) > MAX_ARMS_IN_FIGURES:
            return []
        summary = self._summary
        moved = summary.iloc[(summary["rate"] - summary["observed_rate"]).abs().argmax()]
        level = f"{self.ci:.0%}"
        shown = list(self.arms[:MAX_DENSITIES])
        value = self.metric.value
        return [
            FigureSpec(
                "Shrinkage toward the grand mean",
                "shrinkage plot",
                f"Hollow: observed mean; filled: posterior median; grey: {level} interval; dashed: the grand mean "
                f"{value(self.grand_value())}. Marker area grows with users. {moved.arm} moves furthest: "
                f"{value(moved.observed_rate)} → {value(moved.rate)} (pooling {fmt.fraction(moved.pooling)}).",
                lambda: plots.plot_shrinkage(self),
            ),
            FigureSpec(
                "Posterior densities",
                "posterior density of each arm's mean",
                "Where each arm's true mean plausibly lies; the dashed line is the grand mean."
                + ("" if len(shown) == len(self.arms) else f" The first {len(shown)} arms are drawn."),
                lambda: plots.plot_posterior(self, shown),
            ),
            FigureSpec(
                "Posterior means",
                "boxplots of the posterior means",
                f"Boxes hold the middle 50% of each posterior, whiskers the {level} interval.",
                lambda: plots.plot_boxplots(self),
            ),
            FigureSpec(
                "Pairwise comparisons",
                "heat map of the probability that each row arm beats each column arm",
                "Each cell is the posterior probability that the row's mean exceeds the column's.",
                lambda: plots.plot_prob_greater(self),
            ),
        ]

    def convergence_dataset(self, max_rates: int = 6) -> Any:
        if self.engine == "exact":
            return None
        posterior = self.tree["posterior"].to_dataset()
        return posterior[["mu", "tau"]].assign(mean=posterior["mean"].isel(arm=slice(0, max_rates)))

    # ------------------------------------------------------------------ saving
    @classmethod
    def from_saved(cls, payload: dict[str, Any], tree: Any) -> MeansResult:
        from abpool.errors import InvalidDataError

        fields = common_from_saved(payload, tree, ArmMoments)
        try:
            prior = prior_from_description(payload["prior"])
            settings = payload["settings"]
            engine = str(settings["engine"])
            tune = settings.get("tune")
            names = [str(n) for n in tree["posterior"]["mean"].coords["arm"].values]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"the saved result is incomplete ({exc!r}); save it again") from None
        if names != list(fields["cells"].table["arm"]):
            raise InvalidDataError("the saved draws and summary describe different arms; save the result again")
        return cls(prior=prior, engine=engine, tune=None if tune is None else int(tune), **fields)
