"""Figures that show what the posterior says: each function returns a matplotlib ``Figure``.

Figures are built with the object-oriented API on an Agg canvas, so nothing
here touches pyplot's global state, opens a window or depends on the user's
backend; save them with ``fig.savefig(...)`` or let a notebook display them.
matplotlib (and ArviZ) are imported inside the functions so that
``import abpool`` stays light. Every function reads results through the
contract of :mod:`abpool.result`, so it draws any model's result.

Functions accept one result, or several as a mapping ``{label: result}`` (the
article's scenarios, say) where overlaying them tells the story:

* :func:`plot_posterior` — density of an arm's rate, grand rate dashed;
* :func:`plot_boxplots` — every arm's posterior rate, scenarios side by side;
* :func:`plot_shrinkage` — observed rate (or segment lift) → pooled estimate, marker size by trials;
* :func:`plot_prob_greater` — heat map of ``P(row beats column)``;
* :func:`plot_forest` — each treatment's rate beside its control's, and its lift;
* :func:`plot_sensitivity` — each lift under each prior of a sensitivity panel;
* :func:`plot_convergence` and :func:`convergence_table` — rank plots, R-hat and ESS of MCMC fits.

User text (arm and segment names) is drawn literally: a ``$`` never starts mathtext.

Examples
--------
>>> import abpool
>>> from abpool import datasets, plots
>>> fits = {label: abpool.analyze_variants(frame, seed=1)
...         for label, frame in datasets.article_variants_scenarios().items()}
>>> fig = plots.plot_posterior(fits, "A")
>>> [line.get_linestyle() for line in fig.axes[0].lines]
['-', '--', '-', '--']
"""

from abpool.plots._common import shrinkage_panel
from abpool.plots.convergence import convergence_table, plot_convergence
from abpool.plots.rates import plot_boxplots, plot_forest, plot_posterior, plot_prob_greater, plot_shrinkage
from abpool.plots.sensitivity import plot_sensitivity

__all__ = [
    "convergence_table",
    "plot_boxplots",
    "plot_convergence",
    "plot_forest",
    "plot_posterior",
    "plot_prob_greater",
    "plot_sensitivity",
    "plot_shrinkage",
    "shrinkage_panel",
]
