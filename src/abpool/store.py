"""Reading saved results back: :func:`load` rebuilds a result from ``posterior.nc`` + ``summary.json``.

:meth:`VariantsResult.save` writes the draws (netCDF) and everything else
(JSON: data description, settings, prior, diagnostics, exact-engine posterior
means). Loading needs no refit and gives back a result whose summaries,
probabilities and report equal the original's. Which model a directory holds
is read from ``summary.json``'s ``model`` key; each model registers a loader.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abpool.errors import InvalidDataError
from abpool.results import MODEL_NAME as VARIANTS_MODEL
from abpool.segments_result import MODEL_NAME as SEGMENTS_MODEL

Loader = Callable[[dict[str, Any], Any, Path], Any]


def save_result(result: Any, directory: str | Path, *, report: bool = True) -> Path:
    """Write a result's ``posterior.nc`` (draws), ``summary.json`` and ``report.html``, each atomically.

    Any result with ``idata`` and ``to_dict()`` can be saved; :func:`load`
    reads the directory back. Returns the directory.
    """
    from abpool.io import atomic_write, write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "posterior.nc", lambda p: result.idata.to_netcdf(str(p), engine="h5netcdf"))
    write_json(directory / "summary.json", result.to_dict())
    if report:
        from abpool.report import write_report

        write_report(directory / "report.html", result)
    return directory


def _read_summary(directory: Path) -> dict[str, Any]:
    path = directory / "summary.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidDataError(
            f"no saved result in '{directory}': summary.json is missing; write one with: abpool variants DATA --out DIR"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidDataError(f"'{path}' is not a readable abpool summary ({exc}); save the result again") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InvalidDataError(f"'{path}' is not an abpool summary (no 'model' key); save the result again")
    return payload


def _read_posterior(directory: Path) -> Any:
    import arviz as az

    path = directory / "posterior.nc"
    if not path.is_file():
        raise InvalidDataError(
            f"no saved draws in '{directory}': posterior.nc is missing; write them with: abpool variants DATA --out DIR"
        )
    try:
        idata = az.from_netcdf(str(path), engine="h5netcdf")
        idata.posterior.load()
    except Exception as exc:  # netCDF/HDF5 readers raise many unrelated types for a damaged file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidDataError(f"cannot read '{path}' ({first_line}); save the result again") from None
    return idata


def _field(payload: dict[str, Any], *keys: str) -> Any:
    value: Any = payload
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise InvalidDataError(f"summary.json lacks '{'.'.join(keys)}'; save the result again")
        value = value[key]
    return value


def _cells(table: pd.DataFrame, data: dict[str, Any]) -> Any:
    """Rebuild the analysed :class:`~abpool.data.Cells` from a saved table and its description."""
    from abpool.data import Cells

    return Cells(
        table=table,
        segment_columns=tuple(data["segment_columns"]),
        arm_column=str(data["arm_column"]),
        form=data["form"],
        source=str(data["source"]),
        input_rows=int(data["input_rows"]),
    )


def _check_fingerprints(cells: Any, data: dict[str, Any], idata: Any, directory: Path) -> None:
    """Refuse a directory whose draws, summary and cells do not come from the same data."""
    saved = data.get("fingerprint")
    # Provenance lives on the InferenceData itself (to_inference_data's attrs), not on its groups.
    drawn = getattr(idata, "attrs", {}).get("data_fingerprint")
    if cells.fingerprint != saved or drawn != saved:
        raise InvalidDataError(
            f"posterior.nc and summary.json in '{directory}' come from different data (fingerprints differ); "
            "save the result again"
        )


def _load_variants(payload: dict[str, Any], idata: Any, directory: Path) -> Any:
    from abpool.inference import Diagnostics
    from abpool.priors import VARIANTS_PRIORS
    from abpool.results import VariantsResult

    variants = _field(payload, "variants")
    data = _field(payload, "data")
    try:
        table = pd.DataFrame(
            {
                "arm": pd.Series([str(v["name"]) for v in variants], dtype="str"),
                "trials": np.array([v["trials"] for v in variants], dtype=np.int64),
                "successes": np.array([v["successes"] for v in variants], dtype=np.int64),
            }
        )
        cells = _cells(table, data)
        prior_info = _field(payload, "prior")
        prior = VARIANTS_PRIORS[prior_info["name"]](**_field(payload, "prior", "parameters"))
        diagnostics = Diagnostics(**_field(payload, "diagnostics"))
        posterior = idata.posterior
        rates = posterior["rate"].transpose("chain", "draw", "variant").to_numpy()
        a, b = posterior["a"].to_numpy(), posterior["b"].to_numpy()
        names = [str(n) for n in posterior["rate"].coords["variant"].to_numpy()]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidDataError(f"the result in '{directory}' is incomplete ({exc!r}); save it again") from None
    if names != list(table["arm"]):
        raise InvalidDataError(
            f"posterior.nc and summary.json in '{directory}' describe different variants; save the result again"
        )
    _check_fingerprints(cells, data, idata, directory)
    return VariantsResult(
        cells=cells,
        prior=prior,
        engine=str(_field(payload, "engine")),
        seed=int(_field(payload, "seed")),
        rates=rates,
        a=a,
        b=b,
        posterior_mean=np.array([v["mean"] for v in variants], dtype=float),
        shrinkage=np.array([v["shrinkage"] for v in variants], dtype=float),
        diagnostics=diagnostics,
        ci=float(_field(payload, "ci")),
        control=str(_field(payload, "control")),
        rope=payload.get("rope"),
        created=str(_field(payload, "created")),
    )


def _load_segments(payload: dict[str, Any], idata: Any, directory: Path) -> Any:
    from abpool.inference import Diagnostics
    from abpool.models.segments import FORMS, layout_from_cells
    from abpool.priors import SegmentsPrior
    from abpool.segments_result import SegmentsResult

    data = _field(payload, "data")
    try:
        table = pd.DataFrame(_field(payload, "data", "table"))
        for column in [*data["segment_columns"], "arm"]:
            table[column] = table[column].astype(str)
        table["trials"] = table["trials"].astype(np.int64)
        table["successes"] = table["successes"].astype(np.int64)
        cells = _cells(table, data)
        prior_info = _field(payload, "prior")
        prior = SegmentsPrior(name=prior_info["name"], **_field(payload, "prior", "parameters"))
        layout = layout_from_cells(cells, str(_field(payload, "control")))
        parameterisation = _field(payload, "parameterisation")
        if parameterisation not in FORMS:
            raise ValueError(f"unknown parameterisation {parameterisation!r}")
        diagnostics = Diagnostics(**_field(payload, "diagnostics"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidDataError(f"the result in '{directory}' is incomplete ({exc!r}); save it again") from None
    _check_fingerprints(cells, data, idata, directory)
    return SegmentsResult(
        cells=cells,
        layout=layout,
        prior=prior,
        correlated=bool(_field(payload, "correlated")),
        parameterisation=parameterisation,
        sampler=str(_field(payload, "sampler")),
        seed=int(_field(payload, "seed")),
        idata=idata,
        diagnostics=diagnostics,
        ci=float(_field(payload, "ci")),
        created=str(_field(payload, "created")),
    )


# Keyed by summary.json's "model"; another model adds its loader with register_loader.
LOADERS: dict[str, Loader] = {VARIANTS_MODEL: _load_variants, SEGMENTS_MODEL: _load_segments}


def register_loader(model: str, loader: Loader) -> None:
    """Let :func:`load` read directories whose ``summary.json`` has ``"model": model``."""
    LOADERS[model] = loader


def load(directory: str | Path) -> Any:
    """Rebuild a saved result from ``directory`` (``posterior.nc`` + ``summary.json``), without refitting.

    Parameters
    ----------
    directory : str or path
        A directory written by ``result.save(directory)`` or ``abpool ... --out directory``.

    Returns
    -------
    VariantsResult
        Equal to the saved result in every summary, probability and figure.

    Raises
    ------
    InvalidDataError
        The directory is missing, incomplete, damaged, or holds a model this version cannot read.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidDataError(f"no such directory: '{directory}'; pass the --out directory of an earlier run")
    payload = _read_summary(directory)
    model = payload["model"]
    if model not in LOADERS:
        raise InvalidDataError(
            f"'{directory}' holds a {model!r} result, which this version cannot load; "
            f"it loads: {', '.join(sorted(LOADERS))}"
        )
    return LOADERS[model](payload, _read_posterior(directory), directory)
