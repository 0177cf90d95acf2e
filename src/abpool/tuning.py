"""Tune a process that fits many or large models: freed memory kept for reuse, one BLAS thread.

A fit and its answers allocate and free dozens of arrays of a few hundred
kilobytes (20,000 draws of a few arms, and their sorted copies, lifts and
masks). glibc's ``malloc`` hands such blocks back to the kernel on ``free``
(``mmap`` above its threshold, or trimming the top of the heap), so each new
array pays a page fault for every 4 KiB it touches: on a batch of variant
experiments that was a third of the time of the answers. Raising the two
thresholds keeps those blocks in the process, where the next array reuses
them. Arrays larger than :data:`MMAP_THRESHOLD` are still mapped and returned
as before, and at most :data:`TRIM_THRESHOLD` of free heap is kept.

OpenBLAS, which NumPy uses for matrix products, starts a thread per core
when NumPy loads and keeps those threads spinning after each product; abpool
already spreads its work over the cores (chains, blocks of segments, worker
processes), so the spinning threads only take cores from it.
:func:`tune_process` limits BLAS to one thread as well (the ``abpool``
command asks for one thread before NumPy loads: :mod:`abpool._startup`).

Only processes abpool runs are tuned: the CLI (the allocator; the batch
command both), the batch's pool workers and the workers of a Dask
LocalCluster it starts. A library call in someone else's process leaves
their allocator and threads alone; call :func:`tune_process` at the start
of a script or notebook that fits large models to get the same.
"""

from __future__ import annotations

import os
import sys

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# Blocks up to this size come from the heap, and are reused once freed (glibc's own dynamic ceiling).
MMAP_THRESHOLD = 32 * 2**20
# Free memory at the top of the heap kept for reuse before it is handed back.
TRIM_THRESHOLD = 128 * 2**20
# Extra heap requested with each growth, so a run of allocations grows the heap a few times, not each time.
TOP_PAD = 16 * 2**20


def keep_freed_memory() -> bool:
    """Tune glibc's ``malloc`` of this process to keep freed blocks for reuse; False where there is no glibc.

    Calling it again changes nothing.

    Examples
    --------
    >>> keep_freed_memory() in (True, False)
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (ValueError, OSError):
        return False
    import ctypes

    mallopt = ctypes.CDLL(None).mallopt
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD))
    # mallopt returns 1 on success.
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def tune_process() -> None:
    """Tune this process for abpool's fits: :func:`keep_freed_memory`, and BLAS limited to one thread.

    For a script or notebook that fits large models (thousands of segments)
    or many experiments; ``abpool batch`` and its workers do it themselves.
    On a 10,000-segment fit it took a fifth off the time after sampling.

    Examples
    --------
    >>> import abpool
    >>> abpool.tune_process()
    """
    from threadpoolctl import threadpool_limits

    keep_freed_memory()
    # Called, not used as a context manager: the limit stays for the life of the process.
    threadpool_limits(limits=1, user_api="blas")


__all__ = ["MMAP_THRESHOLD", "TOP_PAD", "TRIM_THRESHOLD", "keep_freed_memory", "tune_process"]
