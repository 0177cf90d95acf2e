"""The README's examples run, as a new user would run them, on the data shipped in ``examples/``.

Every line of a ```` ```bash ```` block is a command that must succeed (exit 0); every
```` ```python ```` block must run. ```` ```sh ```` blocks (``make demo``, ``make test``) are
shown, not run here: they are what runs this. Commands run in a scratch directory holding a
copy of ``examples/``, so outputs such as ``run1/`` never land in the repository.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text(encoding="utf-8")) if lang == language]


def commands() -> list[str]:
    found = []
    for body in blocks("bash"):
        for line in body.splitlines():
            line = line.split(" # ")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                found.append(line)
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", directory / "examples")
    return directory


def test_the_readme_has_examples_of_both_kinds() -> None:
    assert len(commands()) >= 10 and blocks("python")
    assert all(command.startswith(".venv/bin/abpool ") for command in commands())
    # Every data file the examples name is shipped.
    for path in set(re.findall(r"examples/[\w.]+", README.read_text(encoding="utf-8"))):
        assert (ROOT / path).is_file(), path


def chains() -> list[list[str]]:
    """The commands in groups that can run apart: a command reading an earlier one's output joins its group."""
    groups: list[list[str]] = []
    made: dict[str, int] = {}
    for command in commands():
        args = shlex.split(command)
        reads = [arg for arg in args[2:] if arg.rstrip("/") in made]
        index = made[reads[0].rstrip("/")] if reads else len(groups)
        if index == len(groups):
            groups.append([])
        groups[index].append(command)
        if "--out" in args:
            made[args[args.index("--out") + 1].rstrip("/")] = index
    return groups


@pytest.mark.parametrize("group", chains(), ids=[f"{k}-{group[0].split()[1]}" for k, group in enumerate(chains())])
def test_every_command_line_example_succeeds(tmp_path, group) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for command in group:
        argv = [sys.executable, "-m", "abpool", *shlex.split(command)[1:]]
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        assert proc.stdout.strip(), command


def test_report_example_follows_the_run_it_reads() -> None:
    (group,) = [group for group in chains() if any(" report " in command for command in group)]
    assert "--out run1/" in group[0] and group[-1].endswith("report run1/")


@pytest.mark.xdist_group("readme-python")
def test_every_python_example_runs(workdir, monkeypatch) -> None:
    monkeypatch.chdir(workdir)
    for body in blocks("python"):
        exec(compile(body, str(README), "exec"), {"__name__": "readme"})
    assert (workdir / "run3" / "posterior.nc").is_file()
