"""Result objects: posterior draws plus everything a reader asks of them."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool import decisions
from abpool._version import __version__
from abpool.data import Cells
from abpool.errors import InvalidArgumentError
from abpool.inference import Diagnostics
from abpool.io import to_jsonable
from abpool.priors import VariantsPrior

# Above this many variants the full P(i > j) matrix is left out of summaries
# (it grows as J²); ``prob_greater(i, j)`` still answers any pair.
MODEL_NAME = "variants: hierarchical beta-binomial"
MAX_PAIRWISE_IN_SUMMARY = 50

SUMMARY_COLUMNS = {
    "variant": "variant label",
    "trials": "trials (users)",
    "successes": "successes (conversions)",
    "observed_rate": "successes / trials",
    "mean": "posterior mean of the rate",
    "median": "posterior median of the rate",
    "sd": "posterior standard deviation",
    "ci_low": "equal-tailed credible interval, lower end",
    "ci_high": "equal-tailed credible interval, upper end",
    "hdi_low": "highest-density interval, lower end",
    "hdi_high": "highest-density interval, upper end",
    "shrinkage": "posterior mean of (a+b)/(a+b+n): 0 = no pooling, 1 = complete pooling",
    "prob_best": "P(this variant has the highest rate)",
    "expected_loss": "E[best rate - this rate]",
    "lift": "posterior mean of rate - control rate",
    "lift_ci_low": "credible interval of the absolute lift, lower end",
    "lift_ci_high": "credible interval of the absolute lift, upper end",
    "relative_lift": "posterior mean of rate / control rate - 1",
    "relative_lift_ci_low": "credible interval of the relative lift, lower end",
    "relative_lift_ci_high": "credible interval of the relative lift, upper end",
    "prob_beats_control": "P(rate > control rate)",
    "prob_in_rope": "P(|lift| < rope), present when a ROPE is given",
}


def _quantiles(values: NDArray) -> dict[str, float]:
    q = np.quantile(values, [0.025, 0.25, 0.5, 0.75, 0.975])
    return {"median": q[2], "q25": q[1], "q75": q[3], "q025": q[0], "q975": q[4]}


@dataclass(frozen=True)
class VariantsResult:
    """Posterior of the hierarchical Beta-Binomial model for an A/B/n test.

    Use :func:`abpool.analyze_variants` to create one.

    Attributes
    ----------
    cells : Cells
        The data as analysed.
    prior : VariantsPrior
        Hyperprior used.
    engine : str
        ``"exact"`` (quadrature, independent draws) or ``"mcmc"`` (PyMC NUTS).
    seed : int
        Random seed used; passing it again reproduces the result exactly.
    rates : numpy.ndarray
        Draws of every variant's rate, shape ``(chains, draws, variants)``.
    a, b : numpy.ndarray
        Draws of the Beta population parameters, shape ``(chains, draws)``.
    posterior_mean : numpy.ndarray
        Posterior mean of every rate (exact quadrature for the exact engine).
    shrinkage : numpy.ndarray
        Posterior mean of ``(a+b)/(a+b+n_j)``, the weight on the population mean.
    diagnostics : Diagnostics
        Convergence diagnostics.
    ci : float
        Credible level of the intervals.
    control : str
        Label of the control variant (lifts are against it).
    rope : float or None
        Half-width of the region of practical equivalence for the lift.
    """

    cells: Cells
    prior: VariantsPrior
    engine: str
    seed: int
    rates: NDArray[np.float64]
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    posterior_mean: NDArray[np.float64]
    shrinkage: NDArray[np.float64]
    diagnostics: Diagnostics
    ci: float = 0.95
    control: str = ""
    rope: float | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    # ------------------------------------------------------------------ basics
    @property
    def names(self) -> list[str]:
        """Variant labels, in data order."""
        return list(self.cells.table["arm"])

    @property
    def trials(self) -> NDArray[np.int64]:
        return self.cells.table["trials"].to_numpy()

    @property
    def successes(self) -> NDArray[np.int64]:
        return self.cells.table["successes"].to_numpy()

    @property
    def draws(self) -> NDArray[np.float64]:
        """Rate draws flattened over chains, shape ``(samples, variants)``."""
        return self.rates.reshape(-1, self.rates.shape[-1])

    @property
    def grand_rate(self) -> float:
        """The pooled observed rate: all successes over all trials."""
        return float(self.successes.sum() / self.trials.sum())

    def _index(self, name: str | int) -> int:
        if isinstance(name, int | np.integer) and not isinstance(name, bool):
            if 0 <= int(name) < len(self.names):
                return int(name)
        elif str(name) in self.names:
            return self.names.index(str(name))
        raise InvalidArgumentError(f"unknown variant {name!r}; variants are: {', '.join(self.names[:20])}")

    @property
    def control_index(self) -> int:
        return self._index(self.control)

    # --------------------------------------------------------------- answers
    def prob_greater(self, i: str | int, j: str | int) -> float:
        """Posterior probability that variant ``i`` has a higher rate than ``j``.

        Examples
        --------
        >>> import abpool
        >>> res = abpool.analyze_variants(successes=[30, 60], trials=[100, 100], seed=1)
        >>> res.prob_greater("B", "A") > 0.99
        True
        """
        return decisions.prob_greater(self.draws, self._index(i), self._index(j))

    def prob_greater_matrix(self) -> pd.DataFrame:
        """All ``P(row > column)`` as a DataFrame indexed by variant."""
        matrix = decisions.prob_greater_matrix(self.draws)
        return pd.DataFrame(matrix, index=self.names, columns=self.names)

    def prob_best(self) -> pd.Series:
        """Probability that each variant has the highest rate."""
        return pd.Series(decisions.prob_best(self.draws), index=self.names, name="prob_best")

    def expected_loss(self) -> pd.Series:
        """Expected rate given up by choosing each variant."""
        return pd.Series(decisions.expected_loss(self.draws), index=self.names, name="expected_loss")

    def classical(self) -> pd.DataFrame:
        """The classical view beside the Bayesian one: every pair's tests and ``P(arm_i > arm_j)``.

        Columns are those of :func:`abpool.classical.classical_comparisons`
        (raw, Bonferroni, Holm and Benjamini-Hochberg p-values) plus
        ``prob_greater``, the posterior probability that ``arm_i`` beats ``arm_j``.

        Examples
        --------
        >>> import abpool
        >>> res = abpool.analyze_variants(successes=[30, 50, 60], trials=[100] * 3, seed=1)
        >>> table = res.classical()
        >>> table[["arm_i", "arm_j"]].values.tolist()
        [['A', 'B'], ['A', 'C'], ['B', 'C']]
        >>> bool((table["prob_greater"] < 0.01).iloc[0])
        True
        """
        from abpool.classical import classical_comparisons

        table = classical_comparisons(self.cells)
        # The blocked matrix keeps memory bounded however many pairs there are.
        matrix = decisions.prob_greater_matrix(self.draws)
        index = {name: k for k, name in enumerate(self.names)}
        i = table["arm_i"].map(index).to_numpy(dtype=int)
        j = table["arm_j"].map(index).to_numpy(dtype=int)
        table["prob_greater"] = matrix[i, j]
        return table

    @cached_property
    def _summary(self) -> pd.DataFrame:
        draws = self.draws
        low, high = decisions.equal_tailed_interval(draws, self.ci)
        hdi_low, hdi_high = decisions.highest_density_interval(draws, self.ci)
        absolute, relative = decisions.lift_draws(draws, self.control_index)
        lift_low, lift_high = decisions.equal_tailed_interval(absolute, self.ci)
        rel_low, rel_high = decisions.equal_tailed_interval(relative, self.ci)
        frame = pd.DataFrame(
            {
                "variant": self.names,
                "trials": self.trials,
                "successes": self.successes,
                "observed_rate": self.successes / self.trials,
                "mean": self.posterior_mean,
                "median": np.median(draws, axis=0),
                "sd": draws.std(axis=0, ddof=1),
                "ci_low": low,
                "ci_high": high,
                "hdi_low": hdi_low,
                "hdi_high": hdi_high,
                "shrinkage": self.shrinkage,
                "prob_best": decisions.prob_best(draws),
                "expected_loss": decisions.expected_loss(draws),
                "lift": absolute.mean(axis=0),
                "lift_ci_low": lift_low,
                "lift_ci_high": lift_high,
                "relative_lift": relative.mean(axis=0),
                "relative_lift_ci_low": rel_low,
                "relative_lift_ci_high": rel_high,
                "prob_beats_control": (absolute > 0).mean(axis=0),
            }
        )
        control = self.control_index
        for column in (
            "lift",
            "lift_ci_low",
            "lift_ci_high",
            "relative_lift",
            "relative_lift_ci_low",
            "relative_lift_ci_high",
            "prob_beats_control",
        ):
            frame.loc[control, column] = np.nan
        if self.rope is not None:
            frame["prob_in_rope"] = decisions.prob_in_rope(absolute, self.rope)
            frame.loc[control, "prob_in_rope"] = np.nan
        return frame

    def summary(self) -> pd.DataFrame:
        """One row per variant; columns are documented in ``SUMMARY_COLUMNS``.

        Examples
        --------
        >>> import abpool
        >>> res = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=1)
        >>> res.summary()["mean"].round(2).tolist()
        [0.32, 0.5, 0.54, 0.59]
        """
        return self._summary.copy()

    def hyperparameters(self) -> dict[str, dict[str, float]]:
        """Posterior quantiles of ``a``, ``b``, the population mean and ``a + b``.

        Medians and quantiles rather than means: under the article's prior the
        posterior of ``a + b`` has so heavy a tail that its mean can be infinite.
        """
        a = self.a.ravel()
        b = self.b.ravel()
        return {
            "a": _quantiles(a),
            "b": _quantiles(b),
            "population_mean": _quantiles(a / (a + b)),
            "concentration": _quantiles(a + b),
        }

    # ----------------------------------------------------------- figures and HTML
    def plot_posterior(self, variant: str | int | list[str] | None = None) -> Any:
        """Posterior density of the rates, grand rate dashed (see :func:`abpool.plots.plot_posterior`)."""
        from abpool.plots import plot_posterior

        return plot_posterior(self, variant)

    def plot_boxplots(self) -> Any:
        """Boxplots of every variant's posterior rate (see :func:`abpool.plots.plot_boxplots`)."""
        from abpool.plots import plot_boxplots

        return plot_boxplots(self)

    def plot_shrinkage(self) -> Any:
        """Observed rate → pooled estimate per variant (see :func:`abpool.plots.plot_shrinkage`)."""
        from abpool.plots import plot_shrinkage

        return plot_shrinkage(self)

    def plot_prob_greater(self) -> Any:
        """Heat map of P(row beats column) (see :func:`abpool.plots.plot_prob_greater`)."""
        from abpool.plots import plot_prob_greater

        return plot_prob_greater(self)

    def plot_convergence(self) -> Any:
        """Per-chain densities and rank plots of an MCMC fit (see :func:`abpool.plots.plot_convergence`)."""
        from abpool.plots import plot_convergence

        return plot_convergence(self)

    def to_html(self) -> str:
        """The full self-contained HTML report (figures inline), as written by :meth:`save`."""
        from abpool.report import render_report

        return render_report(self)

    def _repr_html_(self) -> str:
        # Notebooks get the decisions and tables only: figures would make every display slow.
        from abpool.report import render_fragment

        return render_fragment(self)

    # ----------------------------------------------------------- serialising
    def to_dict(self) -> dict[str, Any]:
        """Everything in the result as plain JSON-ready data."""
        summary = self._summary
        variants = []
        for row in summary.to_dict("records"):
            entry = {"name": row.pop("variant"), **row}
            variants.append(entry)
        names = self.names
        payload: dict[str, Any] = {
            "model": MODEL_NAME,
            "abpool_version": __version__,
            "prior": {**self.prior.describe(), "text": str(self.prior), "parameters": asdict(self.prior)},
            "engine": self.engine,
            "seed": self.seed,
            "draws": int(self.draws.shape[0]),
            "ci": self.ci,
            "control": self.control,
            "rope": self.rope,
            "grand_rate": self.grand_rate,
            "data": self.cells.describe(),
            "variants": variants,
            "prob_best": dict(zip(names, summary["prob_best"], strict=True)),
            "expected_loss": dict(zip(names, summary["expected_loss"], strict=True)),
            "hyperparameters": self.hyperparameters(),
            "diagnostics": self.diagnostics.to_dict(),
            "created": self.created,
        }
        if len(names) <= MAX_PAIRWISE_IN_SUMMARY:
            matrix = decisions.prob_greater_matrix(self.draws)
            payload["prob_greater"] = {
                ni: {nj: matrix[i, j] for j, nj in enumerate(names) if j != i} for i, ni in enumerate(names)
            }
        else:
            payload["prob_greater"] = None
            payload["prob_greater_note"] = (
                f"{len(names)} variants: the pairwise matrix is omitted; use prob_greater(i, j)"
            )
        # The classical pairs grow as J² like the matrix, so they share its cap.
        if len(names) <= MAX_PAIRWISE_IN_SUMMARY:
            payload["classical"] = self.classical().drop(columns="segment").to_dict("records")
        else:
            payload["classical"] = None
        return to_jsonable(payload)

    def to_json(self, indent: int | None = 2) -> str:
        """The result as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_inference_data(self) -> Any:
        """Draws as ArviZ InferenceData with provenance attributes."""
        import arviz as az

        names = self.names
        a, b = self.a, self.b
        idata = az.from_dict(
            posterior={
                "rate": self.rates,
                "a": a,
                "b": b,
                "population_mean": a / (a + b),
                "concentration": a + b,
            },
            observed_data={"successes": self.successes, "trials": self.trials},
            coords={"variant": names},
            dims={"rate": ["variant"], "successes": ["variant"], "trials": ["variant"]},
            attrs={
                "abpool_version": __version__,
                "model": MODEL_NAME,
                "prior": str(self.prior),
                "engine": self.engine,
                "seed": self.seed,
                "data_fingerprint": self.cells.fingerprint,
                "data_source": self.cells.source,
                "created": self.created,
            },
        )
        return idata

    @cached_property
    def idata(self) -> Any:
        """Cached :meth:`to_inference_data`."""
        return self.to_inference_data()

    def save(self, directory: str | Path, *, report: bool = True) -> Path:
        """Write ``posterior.nc`` (draws), ``summary.json`` and ``report.html`` into ``directory``, atomically.

        :func:`abpool.load` reads the directory back; ``abpool report DIR``
        re-renders the report from it. Pass ``report=False`` to skip the HTML.
        Returns the directory.
        """
        from abpool.store import save_result

        return save_result(self, directory, report=report)
