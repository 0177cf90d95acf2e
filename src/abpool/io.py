"""Atomic file output: a reader never sees a half-written file, and a failed
write leaves any earlier file in place."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one step.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = atomic_write(target, lambda p: p.write_text("hello"))
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates owner-only files; give outputs the permissions a normal write would.
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays (and NaN) inside ``value`` to plain JSON types.

    Examples
    --------
    >>> import numpy as np
    >>> to_jsonable({"x": np.float64(0.5), "y": np.array([1, 2]), "z": float("nan")})
    {'x': 0.5, 'y': [1, 2], 'z': None}
    """
    kind = type(value)
    # The plain types first, by exact type: a summary holds tens of thousands of them, and each
    # isinstance test below costs more than the value's conversion.
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is list:
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if np.isfinite(number) else None
    return value


def frame_records(frame: Any) -> list[dict[str, Any]]:
    """``frame.to_dict("records")``, from one conversion of the whole frame: pandas' own walks every cell.

    An object array holds the same plain Python values (int, float, bool, str,
    and the lists, dicts and None of object columns) that ``to_dict`` boxes
    each cell into, so the records are equal, at a tenth of the cost.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"arm": ["A", None], "trials": [3, 4], "rate": [0.5, float("nan")], "best": [True, False]})
    >>> frame_records(frame)[0]
    {'arm': 'A', 'trials': 3, 'rate': 0.5, 'best': True}
    >>> to_jsonable(frame_records(frame)) == to_jsonable(frame.to_dict("records"))
    True
    """
    names = [str(name) for name in frame.columns]
    return [dict(zip(names, values, strict=True)) for values in frame.to_numpy(dtype=object).tolist()]


def column_records(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a table held as named columns (arrays or lists of equal length), as dicts of plain Python values.

    What :func:`frame_records` gives for ``pandas.DataFrame(columns)``, without building the frame.

    Examples
    --------
    >>> import numpy as np
    >>> column_records({"arm": np.array(["A", "B"], dtype=object), "rate": np.array([0.1, 0.2]), "best": [False, True]})
    [{'arm': 'A', 'rate': 0.1, 'best': False}, {'arm': 'B', 'rate': 0.2, 'best': True}]
    """
    names = list(columns)
    values = [column.tolist() if isinstance(column, np.ndarray) else list(column) for column in columns.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def write_json(path: str | Path, payload: dict[str, Any], *, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON, atomically: indented for people to read, or on one line with ``indent=None``.

    Python encodes indented JSON in Python, and one line in C, five times faster.
    """
    text = json.dumps(to_jsonable(payload), indent=indent, ensure_ascii=False)
    return atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
