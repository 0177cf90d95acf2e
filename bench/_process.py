"""What every benchmark shares: whole processes measured from outside, an older abpool to compare against."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def abpool_command() -> list[str]:
    """The ``abpool`` command as a user runs it: the console script installed beside this Python.

    It imports ``abpool`` from ``PYTHONPATH`` when that is set (an older source tree for a baseline).
    """
    script = Path(sys.executable).with_name("abpool")
    return [str(script)] if script.exists() else [sys.executable, "-m", "abpool"]


def run(
    args: list[str], env: dict[str, str] | None = None, allowed: tuple[int, ...] = (0,)
) -> tuple[float, float, float, str]:
    """Run a process to its end: (CPU seconds, wall seconds, peak MB, standard output); exit codes ``allowed``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL, env=_environment(env))
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode()
    if process.returncode not in allowed:
        raise RuntimeError(f"{' '.join(args[:4])} … exited with {process.returncode}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024, text


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    """This process's environment with ``extra``, and Python's bytecode cache allowed.

    An installed package runs from compiled bytecode (pip compiles it at install time). A shell that
    sets ``PYTHONDONTWRITEBYTECODE`` would make every measured process compile abpool's modules from
    source again, about 0.2 CPU s that no user pays.
    """
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**environment, **(extra or {})}


def baseline_tree(commit: str, workdir: Path) -> Path | None:
    """abpool's source as of ``commit``, unpacked under ``workdir``; None (with the reason printed) if unavailable."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src"], capture_output=True)
    if archive.returncode != 0:
        print(f"baseline {commit} not in this clone's history ({archive.stderr.decode().strip()}): skipped")
        return None
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive.stdout, check=True)
    return workdir / "src"


def write(path: Path, lines: list[str]) -> None:
    """Write a results file atomically (a reader never sees half a table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join([*lines, ""]))
    tmp.replace(path)
