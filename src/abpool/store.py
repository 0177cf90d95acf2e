"""Saving and loading results: ``posterior.nc`` (the draws) + ``summary.json`` (everything else).

Which model a directory holds is read from ``summary.json``'s ``model`` key and
looked up in the registry of :mod:`abpool.result`; the model's
``from_saved`` rebuilds the result, with no refit. A saved result gives back
the same summaries, probabilities and report as the original.

Examples
--------
>>> import tempfile, abpool
>>> res = abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=3)
>>> back = abpool.load(res.save(tempfile.mkdtemp(), report=False))
>>> back.prob_greater("B", "A") == res.prob_greater("B", "A"), back.seed
(True, 3)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from abpool.errors import InvalidDataError
from abpool.io import atomic_write, write_json
from abpool.result import SCHEMA_VERSION, Result, registered_models
from abpool.result import model_entry as _model_entry

DRAWS_FILE = "posterior.nc"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


def save_result(result: Result, directory: str | Path, *, report: bool = True) -> Path:
    """Write a result's ``posterior.nc`` (draws), ``summary.json`` and ``report.html``, each atomically.

    Returns the directory; :func:`load` reads it back.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / DRAWS_FILE, lambda p: result.tree.to_netcdf(str(p), engine="h5netcdf"))
    write_json(directory / SUMMARY_FILE, result.to_dict())
    if report:
        from abpool.report import write_report

        write_report(directory / REPORT_FILE, result)
    return directory


def _read_summary(directory: Path) -> dict[str, Any]:
    path = directory / SUMMARY_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidDataError(
            f"no saved result in '{directory}': {SUMMARY_FILE} is missing; "
            "write one with: abpool variants DATA --out DIR"
        ) from None
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


def _read_draws(directory: Path) -> Any:
    import xarray as xr

    path = directory / DRAWS_FILE
    if not path.is_file():
        raise InvalidDataError(
            f"no saved draws in '{directory}': {DRAWS_FILE} is missing; write them with: abpool variants DATA --out DIR"
        )
    try:
        with xr.open_datatree(str(path), engine="h5netcdf") as opened:
            tree = opened.load()
    except Exception as exc:  # netCDF/HDF5 readers raise many unrelated types for a damaged file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidDataError(f"cannot read '{path}' ({first_line}); save the result again") from None
    if "posterior" not in tree.children:
        raise InvalidDataError(f"'{path}' holds no posterior draws; save the result again")
    return tree


def load(directory: str | Path) -> Result:
    """Rebuild a saved result from ``directory`` (``posterior.nc`` + ``summary.json``), without refitting.

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
        The directory is missing, incomplete, damaged, or holds a model this version cannot read.
    """
    if not isinstance(directory, str | Path):
        raise InvalidDataError(f"directory must be a path to a saved result, got {directory!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidDataError(f"no such directory: '{directory}'; pass the --out directory of an earlier run")
    payload = _read_summary(directory)
    model = payload["model"]
    if model not in registered_models():
        raise InvalidDataError(
            f"'{directory}' holds a {model!r} result, which this version cannot load; "
            f"it loads: {', '.join(registered_models())}"
        )
    return _model_entry(model).result_type.from_saved(payload, _read_draws(directory))
