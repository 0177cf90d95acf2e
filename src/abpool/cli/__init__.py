"""The ``abpool`` command line: a thin layer over the Python API.

Each command lives in a module of this package and registers itself on
:data:`app`; importing the package loads them all.

Exit codes: 0 success, 1 analysis refused (did not converge), 2 bad input.
"""

from abpool.cli import (  # noqa: F401  (each module registers its command)
    analyze,
    batch,
    demo,
    means,
    metrics,
    report,
    segments,
    simulate,
    sql,
    variants,
)
from abpool.cli._app import app, run

__all__ = ["app", "run"]
