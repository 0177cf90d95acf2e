"""What the ``abpool`` command settles before NumPy loads: one BLAS thread.

OpenBLAS, the BLAS of NumPy's wheels, starts a thread per core when NumPy is
imported, and the threads spin while they wait: a tenth of a CPU second of a
one-off ``abpool segments`` (about 2 s in all) went to them. abpool spreads
its own work over the cores (chains, blocks of segments, worker processes)
and multiplies no large matrices, so the command keeps BLAS to one thread.
The setting is made in the environment, which the batch's pool and Dask
workers inherit. A value the user set is kept, and a library import in
someone else's process changes nothing (see :mod:`abpool.tuning` for that).
"""

from __future__ import annotations

import os
import sys

# OpenBLAS (NumPy's wheels) and MKL (some other builds) read these when they load.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def started_as_command(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """Whether this process is the ``abpool`` command: its console script, or ``python -m abpool``.

    Examples
    --------
    >>> started_as_command(["/venv/bin/abpool", "segments"], ["python", "/venv/bin/abpool", "segments"])
    True
    >>> started_as_command(["-m", "segments"], ["python", "-X", "importtime", "-m", "abpool", "segments"])
    True
    >>> started_as_command(["-c"], ["python", "-c", "import abpool"])
    False
    """
    argv = list(getattr(sys, "argv", None) or []) if argv is None else argv
    orig_argv = list(getattr(sys, "orig_argv", None) or []) if orig_argv is None else orig_argv
    if argv and os.path.basename(argv[0]) in ("abpool", "abpool.exe"):
        return True
    if "-m" in orig_argv[1:]:
        position = orig_argv.index("-m", 1)
        return orig_argv[position + 1 : position + 2] == ["abpool"]
    return False


def limit_blas_threads() -> bool:
    """In the ``abpool`` command, before NumPy loads, ask BLAS for one thread; whether the setting was made.

    Examples
    --------
    >>> limit_blas_threads()  # this process is not the command, and NumPy is loaded
    False
    """
    if "numpy" in sys.modules or not started_as_command():
        return False
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    return True


limit_blas_threads()
