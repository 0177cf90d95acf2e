"""abpool: A/B/n experiments analysed with hierarchical Bayesian models.

Each variant's rate is shrunk toward the grand rate as much as its sample size
deserves (partial pooling), so questions such as "what is the chance B beats
C?" are answered directly from one posterior, with no multiple-testing
correction.

Examples
--------
>>> import abpool
>>> result = abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=1)
>>> round(result.prob_greater("B", "C"), 1)
0.3
"""

from abpool._version import __version__
from abpool.api import analyze, analyze_segments, analyze_variants
from abpool.data import Cells, load_cells
from abpool.errors import (
    AbpoolError,
    ConvergenceError,
    ConvergenceWarning,
    InvalidArgumentError,
    InvalidDataError,
)
from abpool.priors import BDAPrior, LogNormalPrior, SegmentsPrior
from abpool.results import VariantsResult
from abpool.segments_result import SegmentsResult
from abpool.store import load

__all__ = [
    "AbpoolError",
    "BDAPrior",
    "Cells",
    "ConvergenceError",
    "ConvergenceWarning",
    "InvalidArgumentError",
    "InvalidDataError",
    "LogNormalPrior",
    "SegmentsPrior",
    "SegmentsResult",
    "VariantsResult",
    "__version__",
    "analyze",
    "analyze_segments",
    "analyze_variants",
    "load",
    "load_cells",
]
