"""The result of the variants model: the contract's answers plus what only this model says."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from abpool import _format as fmt
from abpool.outputs import ReportableResult
from abpool.panel import PanelEntry
from abpool.result import FigureSpec, common_from_saved
from abpool.variants.priors import (
    VariantsPrior,
    prior_from_description,
    variants_panel,
    variants_panel_entry,
)

MODEL_NAME = "variants"
# Beyond these sizes a figure stops being readable; the JSON keeps everything.
MAX_VARIANTS_IN_FIGURES = 40
MAX_DENSITIES = 8


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class VariantsResult(ReportableResult):
    """Posterior of the hierarchical Beta-Binomial model of an A/B/n test.

    Create one with :func:`abpool.analyze_variants`. Everything the contract
    answers (:class:`abpool.result.Result`) is available; the draws in
    :attr:`tree` are ``rate`` (chain, draw, arm), ``a``, ``b``,
    ``population_mean`` ``a/(a+b)`` and ``concentration`` ``a+b``.

    Attributes
    ----------
    engine : str
        ``"exact"`` (quadrature, independent draws) or ``"mcmc"`` (PyMC NUTS).
    tune : int or None
        MCMC tuning steps per chain (None for the exact engine).

    Examples
    --------
    >>> import abpool
    >>> res = abpool.analyze_variants(successes=[30, 60], trials=[100, 100], seed=1)
    >>> res.prob_greater("B", "A") > 0.99
    True
    >>> res.summary()[["arm", "trials", "observed_rate"]].values.tolist()
    [['A', 100, 0.3], ['B', 100, 0.6]]
    """

    model: ClassVar[str] = MODEL_NAME
    description: ClassVar[str] = "hierarchical beta-binomial (A/B/n test)"
    arm_noun: ClassVar[str] = "variant"

    prior: VariantsPrior
    engine: str = "exact"
    tune: int | None = None

    # ------------------------------------------------------------------ draws
    @cached_property
    def arms(self) -> tuple[str, ...]:
        # Asked for a dozen times per summary; reading a string column costs more than every answer of it.
        return tuple(self.cells.table["arm"].tolist())

    @classmethod
    def prior_panel(cls) -> list[PanelEntry]:
        return variants_panel()

    @classmethod
    def panel_entry(cls, item: Any) -> PanelEntry:
        return variants_panel_entry(item)

    @cached_property
    def _arrays(self) -> dict[str, NDArray[np.float64]]:
        """The posterior's arrays by name, read out of the draws once (each lookup in a tree costs a draw's worth)."""
        # As held: reading self.tree would build the DataTree a fit hands over as arrays.
        posterior = self._draws["posterior"]
        return {name: posterior[name].values for name in ("a", "b")} | {
            "rate": posterior["rate"].transpose("chain", "draw", "arm").values
        }

    def _posterior(self, name: str) -> NDArray[np.float64]:
        return self._arrays[name]

    def _compute_rate_draws(self) -> NDArray[np.float64]:
        rate = self._arrays["rate"]
        return rate.reshape(-1, 1, rate.shape[-1])

    @cached_property
    def _counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        table = self.cells.table
        return table["trials"].to_numpy()[None, :], table["successes"].to_numpy()[None, :]

    def _cell_counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        return self._counts

    def _pooling(self) -> NDArray[np.float64]:
        concentration = (self._posterior("a") + self._posterior("b")).reshape(-1, 1)
        trials = self._counts[0]
        return (concentration / (concentration + trials)).mean(axis=0)[None, :]

    def _population_rows(self) -> list[dict[str, Any]]:
        a, b = self._posterior("a"), self._posterior("b")
        return [
            {
                "quantity": "population_mean",
                "description": "population mean rate, a/(a+b): where pooled estimates are pulled to",
                "draws": a / (a + b),
            },
            {
                "quantity": "concentration",
                "description": "concentration a+b: how strongly rates are pooled (large = strong pooling)",
                "draws": a + b,
            },
            {"quantity": "a", "description": "a of the Beta(a, b) population", "draws": a},
            {"quantity": "b", "description": "b of the Beta(a, b) population", "draws": b},
        ]

    # ------------------------------------------------------------------ words
    def question(self) -> str:
        total_n, total_y = int(self.cells.table["trials"].sum()), int(self.cells.table["successes"].sum())
        return (
            f"Which of the {len(self.arms)} variants ({fmt.names_list(list(self.arms))}) has the highest success "
            f"rate, and by how much does each differ from the control, {self.control}? All {total_n:,} trials gave "
            f"{total_y:,} successes: a grand rate of {fmt.rate(self.grand_rate())}."
        )

    def method_statement(self) -> str:
        return (
            "One hierarchical model answers every comparison at once: each variant's rate is drawn from a common "
            "Beta(a, b) population, so each estimate is pulled toward the grand rate as much as its sample size "
            "deserves, and every probability below comes from one joint posterior."
        )

    def prior_facts(self) -> list[tuple[str, str]]:
        kind = (
            "proper"
            if self.prior.proper
            else "improper (the posterior is proper because a variant has both successes and failures)"
        )
        engine = (
            "exact: quadrature over the population parameters, independent draws"
            if self.engine == "exact"
            else "mcmc: PyMC NUTS over the population parameters, rates drawn from their exact conditionals"
        )
        return [
            ("prior", str(self.prior)),
            ("kind", kind),
            ("rates", "each variant's rate ~ Beta(a, b)"),
            ("engine", engine),
        ]

    def prior_statement(self) -> str:
        return (
            "The prior on the population parameters is stated so that it can be argued with: refit with another "
            "(for example --prior lognormal) and compare. If reasonable priors give similar answers, the data "
            "speak; if they disagree, collect more data."
        )

    def model_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"engine": self.engine, "draws": self.diagnostics.draws}
        if self.engine == "mcmc":
            settings |= {"chains": self.diagnostics.chains, "tune": self.tune}
        return settings

    # ------------------------------------------------------------------ figures
    def figure_specs(self) -> list[FigureSpec]:
        from abpool import plots

        if len(self.arms) > MAX_VARIANTS_IN_FIGURES:
            return []
        summary = self._summary
        moved = summary.iloc[(summary["rate"] - summary["observed_rate"]).abs().argmax()]
        level = f"{self.ci:.0%}"
        shown = list(self.arms[:MAX_DENSITIES])
        return [
            FigureSpec(
                "Shrinkage toward the grand rate",
                "shrinkage plot",
                f"Hollow: observed rate; filled: posterior median; grey: {level} interval; dashed: the grand rate "
                f"{fmt.rate(self.grand_rate())}. Marker area grows with trials. {moved.arm} moves furthest: "
                f"{fmt.rate(moved.observed_rate)} → {fmt.rate(moved.rate)} (pooling {fmt.fraction(moved.pooling)}).",
                lambda: plots.plot_shrinkage(self),
            ),
            FigureSpec(
                "Posterior densities",
                "posterior density of each variant's rate",
                "Where each variant's rate plausibly lies; the dashed line is the grand rate."
                + ("" if len(shown) == len(self.arms) else f" The first {len(shown)} variants are drawn."),
                lambda: plots.plot_posterior(self, shown),
            ),
            FigureSpec(
                "Posterior rates",
                "boxplots of the posterior rates",
                f"Boxes hold the middle 50% of each posterior, whiskers the {level} interval.",
                lambda: plots.plot_boxplots(self),
            ),
            FigureSpec(
                "Pairwise comparisons",
                "heat map of the probability that each row variant beats each column variant",
                "Each cell is the posterior probability that the row's rate exceeds the column's.",
                lambda: plots.plot_prob_greater(self),
            ),
        ]

    def convergence_dataset(self, max_rates: int = 6) -> Any:
        if self.engine == "exact":
            return None
        posterior = self.tree["posterior"].to_dataset()
        # Rank plots do not change under monotone transforms, but the density of
        # log(a+b) is readable where that of a+b is one spike and a long tail.
        return posterior[["population_mean"]].assign(
            log_concentration=np.log(posterior["concentration"]),
            rate=posterior["rate"].isel(arm=slice(0, max_rates)),
        )

    # ------------------------------------------------------------------ saving
    @classmethod
    def from_saved(cls, payload: dict[str, Any], tree: Any) -> VariantsResult:
        from abpool.errors import InvalidDataError

        fields = common_from_saved(payload, tree)
        try:
            prior = prior_from_description(payload["prior"])
            settings = payload["settings"]
            engine = str(settings["engine"])
            tune = settings.get("tune")
            names = [str(n) for n in tree["posterior"]["rate"].coords["arm"].values]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidDataError(f"the saved result is incomplete ({exc!r}); save it again") from None
        if names != list(fields["cells"].table["arm"]):
            raise InvalidDataError("the saved draws and summary describe different variants; save the result again")
        return cls(prior=prior, engine=engine, tune=None if tune is None else int(tune), **fields)
