"""What every result can be turned into: a saved directory, an HTML report, figures.

:class:`ReportableResult` adds these once, for every model, on top of the
contract in :mod:`abpool.result`; each works only through that contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abpool.result import Result

if TYPE_CHECKING:
    from abpool.sensitivity import Sensitivity


class ReportableResult(Result):
    """A :class:`~abpool.result.Result` that saves, renders and plots itself."""

    def save(self, directory: str | Path, *, report: bool = True, force: bool = False) -> Path:
        """Save the run into ``directory``: ``posterior.nc``, ``summary.json``, ``report.html``, ``manifest.json``.

        The directory is replaced as a whole (a reader sees the old run or the
        new one, never a mix); one holding files abpool did not write is
        refused unless ``force``. :func:`abpool.load` reads it back and
        ``abpool report DIR`` re-renders the report. Pass ``report=False`` to
        skip the HTML. Returns the directory.
        """
        from abpool.store import save_result

        return save_result(self, directory, report=report, force=force)

    def to_html(self) -> str:
        """The full self-contained HTML report (figures inline), as written by :meth:`save`."""
        from abpool.report import render_report

        return render_report(self)

    def _repr_html_(self) -> str:
        # Notebooks get the decisions and tables only: figures would make every display slow.
        from abpool.report import render_fragment

        return render_fragment(self)

    def calibrate(
        self,
        *,
        experiments: int | None = None,
        threshold: float = 0.95,
        seed: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ReportableResult:
        """This design's own A/A calibration: how often would it call a false winner?

        Simulates A/A experiments with these arms, segments and users (see
        :func:`abpool.calibration.aa.calibrate`) and returns a copy of the result
        that carries the answer in :attr:`calibration` (shown in the terminal,
        the report and the JSON): the false-winner rate of ``P(beats control) ≥
        threshold`` and the threshold that keeps it at 5%.
        """
        from abpool.calibration.aa import calibrate

        found = calibrate(self, experiments=experiments, threshold=threshold, seed=seed, progress=progress)
        return dataclasses.replace(self, tree=self._draws, calibration=found)

    def sensitivity(
        self, panel: Sequence[Any] | None = None, *, progress: Callable[[int], None] | None = None
    ) -> Sensitivity:
        """Would a different, reasonable prior change the decision? Refit under a panel of priors and compare.

        See :func:`abpool.sensitivity.sensitivity`: the answers and the
        recommendation under each prior of ``panel`` (default: the model's
        panel, see :meth:`prior_panel`), and a verdict per decision, robust or
        prior-dependent. Returns a :class:`~abpool.sensitivity.Sensitivity`.
        """
        from abpool.sensitivity import sensitivity

        return sensitivity(self, panel, progress=progress)

    def with_sensitivity(
        self, panel: Sequence[Any] | None = None, *, progress: Callable[[int], None] | None = None
    ) -> ReportableResult:
        """A copy of the result that carries :meth:`sensitivity` in the terminal, the report, the JSON and saves."""
        found = self.sensitivity(panel, progress=progress)
        return dataclasses.replace(self, tree=self._draws, prior_sensitivity=found.to_dict())

    # ------------------------------------------------------------------ figures
    def plot_posterior(self, arm: Any = None, segment: str | int | None = None) -> Any:
        """Posterior density of the rates, grand rate dashed (see :func:`abpool.plots.plot_posterior`)."""
        from abpool.plots import plot_posterior

        return plot_posterior(self, arm, segment=segment)

    def plot_boxplots(self, segment: str | int | None = None) -> Any:
        """Boxplots of every arm's posterior rate (see :func:`abpool.plots.plot_boxplots`)."""
        from abpool.plots import plot_boxplots

        return plot_boxplots(self, segment=segment)

    def plot_shrinkage(self) -> Any:
        """Observed → pooled estimates (see :func:`abpool.plots.plot_shrinkage`)."""
        from abpool.plots import plot_shrinkage

        return plot_shrinkage(self)

    def plot_prob_greater(self, segment: str | int | None = None) -> Any:
        """Heat map of P(row beats column) (see :func:`abpool.plots.plot_prob_greater`)."""
        from abpool.plots import plot_prob_greater

        return plot_prob_greater(self, segment=segment)

    def plot_forest(self) -> Any:
        """Rates and lifts with intervals, one row per arm or segment (see :func:`abpool.plots.plot_forest`)."""
        from abpool.plots import plot_forest

        return plot_forest(self)

    def plot_convergence(self, *, max_rates: int = 6) -> Any:
        """Per-chain densities and rank plots of an MCMC fit (see :func:`abpool.plots.plot_convergence`)."""
        from abpool.plots import plot_convergence

        return plot_convergence(self, max_rates=max_rates)
