"""abpool: A/B/n experiments analysed with hierarchical Bayesian models.

Each variant's rate is shrunk toward the grand rate as much as its sample size
deserves (partial pooling), so questions such as "what is the chance B beats
C?" are answered directly from one posterior.

Every model's result follows one contract (:mod:`abpool.result`): the same
vocabulary, JSON schema, report and decisions.

Examples
--------
>>> import abpool
>>> result = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=1)
>>> round(result.prob_greater("B", "C"), 1)
0.3
"""

import typing

# First: in the abpool command, it settles BLAS's threads before NumPy loads.
import abpool._startup  # noqa: F401
from abpool._version import __version__
from abpool.data import Cells, load_cells
from abpool.errors import (
    AbpoolError,
    ConvergenceError,
    ConvergenceWarning,
    InvalidArgumentError,
    InvalidDataError,
)
from abpool.means import MeansResult, analyze_means
from abpool.result import POPULATION_COLUMNS, VOCABULARY, Result
from abpool.segments import SegmentsPrior, SegmentsResult, analyze_segments
from abpool.variants import BDAPrior, LogNormalPrior, VariantsResult, analyze_variants

if typing.TYPE_CHECKING:
    from abpool import datasets, plots
    from abpool.api import analyze
    from abpool.batch import BatchResult, analyze_batch
    from abpool.scorecard import Scorecard, analyze_metrics
    from abpool.store import load
    from abpool.tuning import tune_process

# Public names imported on first use: the batch machinery, the scorecard and saving pull in SciPy and much of
# the package, which a one-off fit (above all ``abpool segments``) never needs. Models above stay eager: they
# register themselves for load, report and the command line. name -> (module, attribute; None: the module).
_ON_FIRST_USE: dict[str, tuple[str, str | None]] = {
    "BatchResult": ("abpool.batch", "BatchResult"),
    "Scorecard": ("abpool.scorecard", "Scorecard"),
    "analyze": ("abpool.api", "analyze"),
    "analyze_batch": ("abpool.batch", "analyze_batch"),
    "analyze_metrics": ("abpool.scorecard", "analyze_metrics"),
    "datasets": ("abpool.datasets", None),
    "load": ("abpool.store", "load"),
    "plots": ("abpool.plots", None),
    "tune_process": ("abpool.tuning", "tune_process"),
}


def __getattr__(name: str) -> typing.Any:
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module 'abpool' has no attribute {name!r}")
    import importlib

    module_name, attribute = _ON_FIRST_USE[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "POPULATION_COLUMNS",
    "VOCABULARY",
    "AbpoolError",
    "BDAPrior",
    "BatchResult",
    "Cells",
    "ConvergenceError",
    "ConvergenceWarning",
    "InvalidArgumentError",
    "InvalidDataError",
    "LogNormalPrior",
    "MeansResult",
    "Result",
    "Scorecard",
    "SegmentsPrior",
    "SegmentsResult",
    "VariantsResult",
    "__version__",
    "analyze",
    "analyze_batch",
    "analyze_means",
    "analyze_metrics",
    "analyze_segments",
    "analyze_variants",
    "datasets",
    "load",
    "load_cells",
    "plots",
    "tune_process",
]
