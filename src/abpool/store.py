"""Saving and loading results: a directory that is always one complete run, checked when read.

A saved run is ``posterior.nc`` (the draws), ``summary.json`` (everything
else), ``report.html`` and ``manifest.json`` (the SHA-256 of each file). It is
written into a new directory beside the target and renamed into place, so a
reader sees the old complete run or the new complete run, never a mix, and a
killed save leaves nothing inside the target. :func:`load` refuses a directory
whose files do not match their manifest (changed, truncated or swapped after
saving) or whose draws come from another fit.

Which model a directory holds is read from ``summary.json``'s ``model`` key and
looked up in the registry of :mod:`abpool.result`; the model's ``from_saved``
rebuilds the result, with no refit.

Examples
--------
>>> import tempfile, abpool
>>> res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=3)
>>> back = abpool.load(res.save(tempfile.mkdtemp() + "/run", report=False))
>>> back.prob_greater("B", "A") == res.prob_greater("B", "A"), back.seed
(True, 3)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from abpool.errors import InvalidArgumentError, InvalidDataError
from abpool.io import atomic_write, write_json
from abpool.result import SCHEMA_VERSION, Result, registered_models
from abpool.result import model_entry as _model_entry

DRAWS_FILE = "posterior.nc"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
MANIFEST_FILE = "manifest.json"
RUN_FILES = frozenset({DRAWS_FILE, SUMMARY_FILE, REPORT_FILE, MANIFEST_FILE})
# Siblings a save works in; a killed save may leave one behind, and the next save removes it.
_WORK_PREFIX = ".abpool-"


def sha256(path: Path) -> str:
    """SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_out(directory: str | Path, *, force: bool = False) -> Path:
    """Check that a run can be saved in ``directory``, before any work is done; one-line errors otherwise.

    The directory may not exist yet (it is created), or hold an earlier run,
    which is replaced. A directory holding files abpool did not write is
    refused unless ``force``: then the run's files are written beside them.
    """
    if not isinstance(directory, str | Path) or not str(directory):
        raise InvalidArgumentError(f"out must be a directory path, got {directory!r}")
    directory = Path(directory)
    if directory.is_symlink() and not directory.exists():
        raise InvalidArgumentError(f"--out '{directory}' is a broken symbolic link; remove it or choose another --out")
    if directory.exists() and not directory.is_dir():
        raise InvalidArgumentError(f"--out '{directory}' is a file, not a directory; choose another --out")
    parent = directory.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InvalidArgumentError(f"cannot create --out '{directory}': '{ancestor}' is a file")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise InvalidArgumentError(f"cannot write to --out '{directory}': '{ancestor}' is not writable")
            break
    if directory.is_dir():
        if not os.access(directory, os.W_OK | os.X_OK):
            raise InvalidArgumentError(f"cannot write to --out '{directory}': permission denied")
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in RUN_FILES)
        if foreign and not force:
            listed = ", ".join(foreign[:3]) + (f", … ({len(foreign)} in all)" if len(foreign) > 3 else "")
            raise InvalidArgumentError(
                f"--out '{directory}' holds files abpool did not write ({listed}); choose a new or empty "
                "directory, or pass --force to write the run beside them"
            )
    return directory


def save_result(result: Result, directory: str | Path, *, report: bool = True, force: bool = False) -> Path:
    """Save a run: ``posterior.nc``, ``summary.json``, ``report.html`` and ``manifest.json``, atomically.

    Returns the directory; :func:`load` reads it back.
    """
    given = check_out(directory, force=force)
    # Absolute, so that "." and "run/" have a name and a parent to work beside.
    directory = given.resolve()
    _remove_leftovers(directory)
    beside_others = directory.is_dir() and any(p.name not in RUN_FILES for p in directory.iterdir())
    if beside_others:
        # The user's own files stay: each of ours is replaced atomically, the manifest last.
        _write_run(result, directory, report=report)
        return given
    work = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{directory.name}.new-", dir=directory.parent))
    try:
        work.chmod(0o777 & ~_umask())
        _write_run(result, work, report=report)
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{directory.name}.old-", dir=directory.parent))
            os.replace(directory, old / "run")
            os.replace(work, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, directory)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return given


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_leftovers(directory: Path) -> None:
    """Remove the work directories a killed save of ``directory`` left beside it."""
    parent = directory.parent
    if parent.is_dir():
        for stale in parent.glob(f"{_WORK_PREFIX}{directory.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)


def _write_run(result: Result, directory: Path, *, report: bool) -> None:
    atomic_write(directory / DRAWS_FILE, lambda p: result.tree.to_netcdf(str(p), engine="h5netcdf"))
    write_json(directory / SUMMARY_FILE, result.to_dict())
    if report:
        from abpool.report import write_report

        write_report(directory / REPORT_FILE, result)
    else:
        (directory / REPORT_FILE).unlink(missing_ok=True)
    write_manifest(directory, model=result.model)


def write_manifest(directory: Path, *, model: str) -> Path:
    """Write ``manifest.json``: the SHA-256 of every file of the run now in ``directory``."""
    files = {
        name: sha256(directory / name)
        for name in (DRAWS_FILE, SUMMARY_FILE, REPORT_FILE)
        if (directory / name).is_file()
    }
    return write_json(
        directory / MANIFEST_FILE,
        {"abpool_manifest": 1, "schema_version": SCHEMA_VERSION, "model": model, "sha256": files},
    )


def update_report(directory: str | Path, html_path: Path) -> None:
    """Record a re-rendered ``report.html`` in the manifest (``abpool report`` rewrites it)."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    if html_path.resolve() == (directory / REPORT_FILE).resolve():
        manifest["sha256"][REPORT_FILE] = sha256(html_path)
        write_json(directory / MANIFEST_FILE, manifest)


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["sha256"]
        if not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
            raise TypeError("sha256 must map file names to digests")
    except FileNotFoundError:
        raise InvalidDataError(
            f"no {MANIFEST_FILE} in '{directory}': not a complete abpool run (or one saved by an older version); "
            "save the result again"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InvalidDataError(f"'{path}' is not a readable abpool manifest ({exc}); save the result again") from None
    return manifest


def _verify(directory: Path, manifest: dict[str, Any], name: str) -> Path:
    path = directory / name
    expected = manifest["sha256"].get(name)
    if not path.is_file():
        raise InvalidDataError(f"'{directory}' has no {name}; save the result again")
    if expected is None or sha256(path) != expected:
        raise InvalidDataError(
            f"{name} in '{directory}' does not match its manifest (it changed after the run was saved); "
            "save the result again"
        )
    return path


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidDataError(f"'{path}' is not a readable abpool summary ({exc}); save the result again") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InvalidDataError(f"'{path}' is not an abpool summary (no 'model' key); save the result again")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidDataError(
            f"'{path}' was written with result schema {version or 0}, and this abpool reads schema "
            f"{SCHEMA_VERSION}; fit and save the result again"
        )
    return payload


def _read_draws(path: Path) -> Any:
    import xarray as xr

    try:
        with xr.open_datatree(str(path), engine="h5netcdf") as opened:
            tree = opened.load()
    except Exception as exc:  # netCDF/HDF5 readers raise many unrelated types for a damaged file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidDataError(f"cannot read '{path}' ({first_line}); save the result again") from None
    if "posterior" not in tree.children:
        raise InvalidDataError(f"'{path}' holds no posterior draws; save the result again")
    return tree


def _check_same_fit(payload: dict[str, Any], tree: Any, directory: Path) -> None:
    """The draws and the summary must come from one fit: same settings, seed and creation time."""
    attrs = getattr(tree, "attrs", {})
    with contextlib.suppress(KeyError, TypeError, ValueError):
        same = (
            json.loads(attrs["settings"]) == payload["settings"]
            and attrs["created_at"] == payload["provenance"]["created"]
            and attrs["model"] == payload["model"]
        )
        if same:
            return
    raise InvalidDataError(
        f"{DRAWS_FILE} and {SUMMARY_FILE} in '{directory}' come from different fits; save the result again"
    )


def load(directory: str | Path) -> Result:
    """Rebuild a saved result from ``directory``, without refitting, after checking it is one complete run.

    Parameters
    ----------
    directory : str or path
        A directory written by ``result.save(directory)`` or ``abpool ... --out directory``.

    Returns
    -------
    Result
        Of the model that was saved, equal to the original in every summary, probability and figure.

    Raises
    ------
    InvalidDataError
        The directory is missing, incomplete, damaged or changed since it was saved, mixes two fits,
        or holds a model this version cannot read.
    """
    if not isinstance(directory, str | Path):
        raise InvalidDataError(f"directory must be a path to a saved result, got {directory!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidDataError(f"no such directory: '{directory}'; pass the --out directory of an earlier run")
    if not (directory / SUMMARY_FILE).exists() and not (directory / MANIFEST_FILE).exists():
        raise InvalidDataError(
            f"no saved result in '{directory}': {SUMMARY_FILE} is missing; "
            "write one with: abpool variants DATA --out DIR"
        )
    manifest = _read_manifest(directory)
    payload = _read_summary(_verify(directory, manifest, SUMMARY_FILE))
    model = payload["model"]
    if model not in registered_models():
        raise InvalidDataError(
            f"'{directory}' holds a {model!r} result, which this version cannot load; "
            f"it loads: {', '.join(registered_models())}"
        )
    tree = _read_draws(_verify(directory, manifest, DRAWS_FILE))
    _check_same_fit(payload, tree, directory)
    return _model_entry(model).result_type.from_saved(payload, tree)
