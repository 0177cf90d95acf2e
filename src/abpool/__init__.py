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

from abpool import datasets, plots
from abpool._version import __version__
from abpool.api import analyze
from abpool.batch import BatchResult, analyze_batch
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
from abpool.scorecard import Scorecard, analyze_metrics
from abpool.segments import SegmentsPrior, SegmentsResult, analyze_segments
from abpool.store import load
from abpool.variants import BDAPrior, LogNormalPrior, VariantsResult, analyze_variants

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
]
