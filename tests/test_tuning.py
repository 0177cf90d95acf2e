"""abpool's own processes keep freed memory for reuse (glibc's malloc tuned by ``keep_freed_memory``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")

# Six blocks of 640 KB, the size of a fit's draws, allocated and freed together fifty times: the page
# faults each round costs before and after the tuning, counted in a fresh process.
PROBE = textwrap.dedent(
    """
    import resource
    import numpy as np
    from abpool.tuning import keep_freed_memory

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):
            arrays = [np.ones(80_000) for _ in range(6)]
            del arrays
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults()
    default = faults()
    tuned = keep_freed_memory()
    faults()
    print(default, faults(), tuned)
    """
)


@pytest.mark.skipif(not GLIBC, reason="malloc is tuned only where the C library is glibc")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    output = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    default, tuned_faults, tuned = output.split()
    assert tuned == "True"
    # 50 rounds × 6 blocks × 160 pages would fault ~48,000 times when every block is handed back.
    assert int(default) > 10_000, output
    assert int(tuned_faults) < int(default) / 20, output


def test_tuning_twice_changes_nothing() -> None:
    from abpool.tuning import keep_freed_memory

    assert keep_freed_memory() == keep_freed_memory() == GLIBC


def test_a_tuned_process_runs_blas_on_one_thread() -> None:
    code = (
        "import numpy as np, abpool\n"
        "from threadpoolctl import threadpool_info\n"
        "abpool.tune_process()\n"
        "np.ones((200, 200)) @ np.ones(200)\n"
        "print(sorted({pool['num_threads'] for pool in threadpool_info() if pool['user_api'] == 'blas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1]", out
