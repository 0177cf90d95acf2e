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
import io
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from abpool.draws import DrawTree
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
# Draws files of the last few layouts written by this process (see write_draws); a batch writes one layout.
_LAYOUTS: OrderedDict[tuple[Any, ...], _Template] = OrderedDict()
_MAX_LAYOUTS = 4
# The layout of the DataTree that held draws of each held layout make (see _held_layout), learnt from the first.
_HELD_LAYOUTS: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()


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


def save_result(
    result: Result, directory: str | Path, *, report: bool = True, force: bool = False, tidy: bool = True
) -> Path:
    """Save a run: ``posterior.nc``, ``summary.json``, ``report.html`` and ``manifest.json``, atomically.

    Returns the directory; :func:`load` reads it back. ``tidy=False`` skips
    looking for the work directories a killed save of this run left beside it:
    a batch removes those of all its runs at once (:func:`remove_work_leftovers`),
    where a look per run would read a directory of thousands of runs each time.
    """
    given = check_out(directory, force=force)
    # Absolute, so that "." and "run/" have a name and a parent to work beside.
    directory = given.resolve()
    if tidy:
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


def remove_work_leftovers(parent: Path) -> None:
    """Remove the work directories killed saves of any run in ``parent`` left there (before saving new runs)."""
    if parent.is_dir():
        for kind in ("new", "old"):
            for stale in parent.glob(f"{_WORK_PREFIX}*.{kind}-*"):
                shutil.rmtree(stale, ignore_errors=True)


def _write_run(result: Result, directory: Path, *, report: bool) -> None:
    atomic_write(directory / DRAWS_FILE, lambda p: _write_result_draws(result, p))
    write_json(directory / SUMMARY_FILE, result.to_dict())
    if report:
        from abpool.report import write_report

        write_report(directory / REPORT_FILE, result)
    else:
        (directory / REPORT_FILE).unlink(missing_ok=True)
    write_manifest(directory, model=result.model)


def write_draws(tree: Any, path: Path) -> None:
    """Write a result's draws (an :class:`xarray.DataTree`) to ``path`` as netCDF-4, as ``tree.to_netcdf`` does.

    Writing through xarray and h5netcdf costs about 100 ms for a few small
    variables, nearly all of it in h5netcdf's bookkeeping of dimensions, while
    a batch saves run after run of one layout. So the first file of a layout is
    written through xarray and kept in memory (:class:`_Template`); a later
    tree of the same layout (see :func:`_layout`) is written as a copy of it
    with its own root attributes and data values: the same file for every
    reader, in a few milliseconds.
    """
    layout = _layout(tree)
    template = None if layout is None else _LAYOUTS.get(layout)
    if template is None:
        tree.to_netcdf(str(path), engine="h5netcdf")
        if layout is not None:
            _LAYOUTS[layout] = _Template.read(path, tree)
            while len(_LAYOUTS) > _MAX_LAYOUTS:
                _LAYOUTS.popitem(last=False)
        return
    _LAYOUTS.move_to_end(layout)
    path.write_bytes(template.fill(tree.attrs, _data_values(tree)))


def _write_result_draws(result: Result, path: Path) -> None:
    """Write a result's draws as :func:`write_draws` writes ``result.tree``, without building the tree if it can.

    A fit hands over its draws as arrays (:class:`abpool.draws.DrawTree`) and
    building their DataTree costs more than writing the file from a kept
    template. The first result of a held layout (see :func:`_held_layout`)
    builds it and learns the layout of the tree it makes; later ones of that
    held layout fill the template straight from their arrays: the same bytes.
    """
    held = result._draws
    key = _held_layout(held) if isinstance(held, DrawTree) else None
    layout = None if key is None else _HELD_LAYOUTS.get(key)
    template = None if layout is None else _LAYOUTS.get(layout)
    if template is not None:
        _LAYOUTS.move_to_end(layout)
        path.write_bytes(template.fill(held.attrs, _held_values(held)))
        return
    tree = result.tree
    write_draws(tree, path)
    layout = _layout(tree)
    if key is not None and layout is not None:
        _HELD_LAYOUTS[key] = layout
        while len(_HELD_LAYOUTS) > _MAX_LAYOUTS:
            _HELD_LAYOUTS.popitem(last=False)


@dataclass(frozen=True)
class _Template:
    """A draws file as xarray wrote it, and where each data variable's values lie in it.

    ``places`` maps a data variable (group path, name) to the byte offset and
    type of its values, stored contiguously and unfiltered as h5netcdf writes
    them; None when some variable is stored otherwise, and h5py writes them.
    """

    image: bytes
    attrs: dict[str, Any]
    places: dict[tuple[str, str], tuple[int, np.dtype]] | None

    @classmethod
    def read(cls, path: Path, tree: Any) -> _Template:
        import h5py

        places: dict[tuple[str, str], tuple[int, np.dtype]] | None = {}
        with h5py.File(path, "r") as file:
            for node, name, variable in _data_variables(tree):
                stored = file[node.path][name]
                offset = stored.id.get_offset()
                contiguous = stored.chunks is None and stored.id.get_create_plist().get_nfilters() == 0
                if not contiguous or offset is None or stored.id.get_storage_size() != variable.values.nbytes:
                    places = None
                    break
                places[node.path, name] = (offset, stored.dtype)
        return cls(path.read_bytes(), dict(tree.attrs), places)

    def fill(self, root_attrs: dict[str, Any], values: list[tuple[tuple[str, str], Any]]) -> memoryview:
        """The file's bytes with these root attributes and data values in place of the template's.

        ``values`` pairs each data variable's (group path, name) with its array,
        as :func:`_data_values` lists them.
        """
        import h5py

        image = io.BytesIO(self.image)
        with h5py.File(image, "r+") as file:
            attrs = file.attrs
            if [(key, type(value)) for key, value in root_attrs.items()] == [
                (key, type(value)) for key, value in self.attrs.items()
            ]:
                # The same names and types, so each changed value is written in place, in its place in the order.
                for key, value in root_attrs.items():
                    if value != self.attrs[key]:
                        attrs.modify(key, _attribute(value))
            else:
                for key in list(attrs):
                    if key != "_NCProperties":  # h5netcdf's record of the libraries that wrote the file
                        del attrs[key]
                for key, value in root_attrs.items():
                    attrs[key] = _attribute(value)
            if self.places is None:
                for (group, name), array in values:
                    stored = file[group][name]
                    stored[...] = np.asarray(array, dtype=stored.dtype)
        filled = image.getbuffer()
        if self.places is not None:
            # Raw values at their offsets: h5py's own write of a megabyte costs ten times the copy.
            for place, array in values:
                offset, dtype = self.places[place]
                raw = np.ascontiguousarray(array, dtype=dtype).reshape(-1)
                filled[offset : offset + raw.nbytes] = memoryview(raw).cast("B")
        return filled


def _data_variables(tree: Any) -> Iterator[tuple[Any, str, Any]]:
    """Every data variable of the tree: its node, name and variable."""
    for node in tree.subtree:
        for name, variable in node.data_vars.items():
            yield node, str(name), variable


def _data_values(tree: Any) -> list[tuple[tuple[str, str], Any]]:
    """Every data variable of a DataTree as ((group path, name), values), for :meth:`_Template.fill`."""
    return [((node.path, name), variable.values) for node, name, variable in _data_variables(tree)]


def _held_values(held: DrawTree) -> list[tuple[tuple[str, str], Any]]:
    """Every array of held draws as ((group path, name), values): the data variables of the DataTree they make."""
    return [
        ((f"/{group_name}", name), variable.values)
        for group_name, group in held.groups.items()
        for name, variable in group.variables.items()
    ]


def _held_layout(held: DrawTree) -> tuple[Any, ...] | None:
    """What the DataTree of held draws would hold besides data values and root attributes; None if unsure.

    Held groups carry no attributes and their variables no attributes or
    encoding, so their DataTree is fixed by what this lists: group names,
    each variable's name, dimensions, shape and type, each coordinate's
    values, and the names and types of the root attributes. Draws that agree
    on it make DataTrees of one :func:`_layout`.
    """
    if not all(isinstance(value, str) or _is_int(value) for value in held.attrs.values()):
        return None
    layout: list[Any] = [tuple((key, type(value)) for key, value in held.attrs.items())]
    for group_name, group in held.groups.items():
        parts: list[Any] = [group_name]
        for name, variable in group.variables.items():
            if variable.values.dtype.kind not in "biuf":
                return None
            parts.append((name, variable.dims, variable.shape, variable.values.dtype.str))
        for dim, labels in group.coords.items():
            values = np.asarray(labels)
            key = values.tobytes() if values.dtype.kind in "fiu" else tuple(values.tolist())
            parts.append(("coordinate", dim, values.dtype.str, key))
        layout.append(tuple(parts))
    return tuple(layout)


def _attribute(value: str | int) -> Any:
    """An attribute's value as h5netcdf writes it: a string as it is, an integer as a one-element array."""
    return value if isinstance(value, str) else np.atleast_1d(value)


def _layout(tree: Any) -> tuple[Any, ...] | None:
    """What a draws file holds besides its data values and root attributes, or None when it cannot be reused.

    Two trees of one layout have the same groups and group attributes, data
    variables of the same names, dimensions, shapes and numeric or boolean
    types (no attributes or encoding, so xarray writes their values as they
    are, booleans as int8), and the same coordinates (index coordinates only,
    equal values). Root attributes must be strings or integers: those
    :func:`write_draws` writes itself.
    """
    if not all(isinstance(value, str) or _is_int(value) for value in tree.attrs.values()):
        return None
    layout: list[Any] = []
    for node in tree.subtree:
        if node.is_root and (node.has_data or node.coords):
            return None
        if not all(isinstance(value, str) or _is_int(value) for value in node.attrs.values()):
            return None
        parts: list[Any] = [node.path, tuple(node.attrs.items())] if not node.is_root else [node.path]
        for name, variable in node.data_vars.items():
            if variable.dtype.kind not in "biuf" or variable.attrs or variable.encoding:
                return None
            parts.append((name, variable.dims, variable.shape, variable.dtype.str))
        for name, coordinate in node.coords.items():
            if coordinate.dims != (name,) or coordinate.attrs or coordinate.encoding or name in node.data_vars:
                return None
            values = coordinate.values
            key = values.tobytes() if values.dtype.kind in "fiu" else tuple(values.tolist())
            parts.append(("coordinate", name, values.dtype.str, key))
        layout.append(tuple(parts))
    return tuple(layout)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


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
