"""The public API is what ``__all__`` says, and it imports without samplers."""

from __future__ import annotations

import subprocess
import sys

import abpool


def test_all_names_exist() -> None:
    for name in abpool.__all__:
        assert hasattr(abpool, name), name


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(abpool.InvalidDataError, abpool.AbpoolError)
    assert issubclass(abpool.InvalidDataError, ValueError)
    assert issubclass(abpool.ConvergenceError, abpool.AbpoolError)


def test_import_does_not_load_a_sampler() -> None:
    code = "import sys, abpool; print('pymc' in sys.modules, 'pytensor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
