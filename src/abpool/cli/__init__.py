"""The ``abpool`` command line: a thin layer over the Python API.

Each command lives in a module of this package and registers itself on
:data:`app`; importing the package loads them all.

Exit codes: 0 success, 1 analysis refused (did not converge), 2 bad input.
"""

from abpool.cli import (
    demo,  # noqa: F401  (registers demo)
    report,  # noqa: F401  (registers report)
    segments,  # noqa: F401  (registers segments)
    simulate,  # noqa: F401  (registers simulate)
    variants,  # noqa: F401  (registers variants, analyze)
)
from abpool.cli._app import app, run

__all__ = ["app", "run"]
