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


# How many BLAS threads a process that imports abpool runs, and what OPENBLAS_NUM_THREADS it ends with.
BLAS_PROBE = (
    "import os, sys\n"
    "{argv}"
    "import abpool\n"
    "from threadpoolctl import threadpool_info\n"
    "threads = sorted({{pool['num_threads'] for pool in threadpool_info() if pool['user_api'] == 'blas'}})\n"
    "print(threads, os.environ.get('OPENBLAS_NUM_THREADS'))"
)


def blas_threads(*, as_command: bool, environment: dict[str, str]) -> str:
    argv = "sys.argv[0] = '/venv/bin/abpool'\n" if as_command else ""
    env = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")} | environment
    code = BLAS_PROBE.format(argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenBLAS starts one thread anyway")
def test_the_command_loads_blas_with_one_thread_and_a_library_import_leaves_it_alone() -> None:
    assert blas_threads(as_command=True, environment={}).strip() == "[1] 1"
    # A script or notebook that imports abpool keeps BLAS's own choice (a thread per core).
    library = blas_threads(as_command=False, environment={})
    assert library.strip().endswith("None") and not library.startswith("[1]"), library
    # A setting of the user's is theirs.
    assert blas_threads(as_command=True, environment={"OPENBLAS_NUM_THREADS": "2"}).strip() == "[2] 2"


def test_python_m_abpool_is_the_command_and_other_modules_are_not() -> None:
    from abpool._startup import started_as_command

    assert started_as_command(["-m", "batch"], ["/usr/bin/python3", "-m", "abpool", "batch"])
    assert started_as_command(["/home/me/.local/bin/abpool"], ["/usr/bin/python3", "/home/me/.local/bin/abpool"])
    assert not started_as_command(["-m", "tests"], ["/usr/bin/python3", "-m", "pytest", "tests"])
    assert not started_as_command(["/srv/app.py"], ["/usr/bin/python3", "/srv/app.py"])
    assert not started_as_command([], [])
