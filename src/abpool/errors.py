"""The exceptions abpool raises, in one place.

Hierarchy::

    AbpoolError                      base of everything abpool raises on purpose
    ├── InvalidDataError(ValueError) the data cannot be analysed as given (CLI exit 2)
    ├── InvalidArgumentError(ValueError) an option or argument is wrong (CLI exit 2)
    └── ConvergenceError             a fit did not converge and the caller refused it (CLI exit 1)
    ConvergenceWarning(UserWarning)  a fit is unreliable but was returned with diagnostics

Messages are one line: they name the column, row or value at fault and say
what to do.
"""

from __future__ import annotations


class AbpoolError(Exception):
    """Base class of every error abpool raises deliberately."""


class InvalidDataError(AbpoolError, ValueError):
    """The input data cannot be analysed as given."""


class InvalidArgumentError(AbpoolError, ValueError):
    """An argument or option has an invalid value."""


class ConvergenceError(AbpoolError):
    """A fit did not converge and unconverged results were not allowed."""


class ConvergenceWarning(UserWarning):
    """A fit finished but its diagnostics say it is unreliable."""
