"""Draws held as numpy arrays with named dimensions, made into xarray only when someone asks for xarray.

A result's draws are an :class:`xarray.DataTree` (:attr:`abpool.result.Result.tree`),
but importing xarray costs about as much as a whole segments fit, and more again
because building a Dataset imports Dask when it is installed. Samplers that
return plain arrays (the segments kernel) therefore hand over :class:`Group`
objects gathered in a :class:`DrawTree`; abpool reads them through the lookups
it shares with xarray (``tree["posterior"][name].values``, ``attrs``), and
:class:`TreeField` builds the DataTree the first time ``result.tree`` is read.
The DataTree is the one the same arrays would have given at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray


class Variable:
    """One array and the names of its dimensions: the part of :class:`xarray.DataArray` abpool reads."""

    def __init__(self, dims: Iterable[str], values: Any) -> None:
        self.dims = tuple(dims)
        self.values: NDArray = np.asarray(values)
        if self.values.ndim != len(self.dims):
            raise ValueError(f"{len(self.dims)} dimension names for an array of {self.values.ndim} dimensions")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def transpose(self, *dims: Any) -> Variable:
        """The same draws with dimensions in the order named; ``...`` stands for the others, in their order."""
        named = [d for d in dims if d is not Ellipsis]
        rest = [d for d in self.dims if d not in named]
        order: list[str] = []
        for d in dims:
            order.extend(rest if d is Ellipsis else [d])
        if sorted(order) != sorted(self.dims):
            raise ValueError(f"cannot order dimensions {self.dims} as {dims}")
        return Variable(order, self.values.transpose([self.dims.index(d) for d in order]))

    def sum(self) -> Any:
        return self.values.sum()


class Group:
    """Named arrays sharing dimensions, with a coordinate per dimension: the part of :class:`xarray.Dataset` used.

    Parameters
    ----------
    variables : mapping
        ``name → (dims, values)``, as for :class:`xarray.Dataset`.
    coords : mapping, optional
        ``dimension → labels``; a dimension may have labels and no variable,
        as in a Dataset.

    Examples
    --------
    >>> import numpy as np
    >>> group = Group({"rate": (("chain", "draw"), np.zeros((2, 3)))}, {"chain": [0, 1]})
    >>> group.sizes, "rate" in group, group["rate"].transpose("draw", ...).shape
    ({'chain': 2, 'draw': 3}, True, (3, 2))
    """

    def __init__(self, variables: Mapping[str, tuple[Iterable[str], Any]], coords: Mapping[str, Any] | None = None):
        self._variables = {name: Variable(dims, values) for name, (dims, values) in variables.items()}
        # Shared labels (see shared_labels) are kept as they are: their xarray coordinates are built once.
        self._coords: Mapping[str, Any] = coords if isinstance(coords, MappingProxyType) else dict(coords or {})

    @property
    def sizes(self) -> dict[str, int]:
        """Length of every dimension, the coordinates' first."""
        sizes = {dim: len(labels) for dim, labels in self._coords.items()}
        for variable in self._variables.values():
            for dim, size in zip(variable.dims, variable.shape, strict=True):
                if sizes.setdefault(dim, size) != size:
                    raise ValueError(f"dimension {dim!r} has lengths {sizes[dim]} and {size}")
        return sizes

    @property
    def dims(self) -> dict[str, int]:
        return self.sizes

    @property
    def variables(self) -> dict[str, Variable]:
        """The arrays by name, in the order given (a Dataset's data variables)."""
        return self._variables

    @property
    def coords(self) -> dict[str, Any]:
        """The labels of each labelled dimension, as given."""
        return self._coords

    def __contains__(self, name: object) -> bool:
        return name in self._variables

    def __getitem__(self, name: str) -> Variable:
        return self._variables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._variables)

    def assign(self, **variables: tuple[Iterable[str], Any]) -> Group:
        """A new group with these variables added (or replaced), as :meth:`xarray.Dataset.assign`."""
        group = Group({}, self._coords)
        group._variables = {**self._variables, **{name: Variable(*item) for name, item in variables.items()}}
        group.sizes  # noqa: B018  (refuses a new variable whose lengths disagree)
        return group

    def assign_coords(self, coords: Mapping[str, Any]) -> Group:
        """A new group with these dimensions' labels, as :meth:`xarray.Dataset.assign_coords`."""
        sizes = self.sizes
        for dim, labels in coords.items():
            if dim in sizes and len(labels) != sizes[dim]:
                raise ValueError(f"{len(labels)} labels for dimension {dim!r} of length {sizes[dim]}")
        group = Group({}, {**self._coords, **coords})
        group._variables = dict(self._variables)
        return group

    def to_xarray(self) -> Any:
        """The :class:`xarray.Dataset` of these arrays and labels."""
        import xarray as xr

        return xr.Dataset(
            {name: (variable.dims, variable.values) for name, variable in self._variables.items()},
            coords=_xarray_coordinates(self._coords),
        )


def shared_labels(labels: Mapping[str, Any]) -> Mapping[str, Any]:
    """``labels`` (dimension → labels) to be shared by many groups: their xarray indexes are built once.

    A batch fits experiment after experiment of one shape; building a Dataset's
    indexes costs more than the rest of it, and indexes never change, so the
    Datasets of groups given the same shared labels share them. Nothing of
    xarray is imported until a Dataset is built.

    Examples
    --------
    >>> import numpy as np
    >>> labels = shared_labels({"arm": ["A", "B"]})
    >>> first = Group({"rate": (("arm",), np.zeros(2))}, labels).to_xarray()
    >>> second = Group({"rate": (("arm",), np.ones(2))}, labels).to_xarray()
    >>> first.xindexes["arm"] is second.xindexes["arm"]
    True
    """
    return MappingProxyType(dict(labels))


# The xarray coordinates of recent shared labels, by identity; each entry keeps its labels alive, so an
# identity is never reused while it is here.
_COORDINATES: OrderedDict[int, tuple[Mapping[str, Any], Any]] = OrderedDict()
_COORDINATES_KEPT = 16


def _xarray_coordinates(labels: Mapping[str, Any]) -> Any:
    """``labels`` for :class:`xarray.Dataset`: the same coordinates each time for shared labels."""
    if not isinstance(labels, MappingProxyType):
        return dict(labels)
    import xarray as xr

    found = _COORDINATES.get(id(labels))
    if found is None:
        found = (labels, xr.Coordinates(dict(labels)))
        _COORDINATES[id(labels)] = found
        while len(_COORDINATES) > _COORDINATES_KEPT:
            _COORDINATES.popitem(last=False)
    return found[1]


class DrawTree:
    """Groups of draws by name (``posterior``, ``sample_stats``, ``observed_data``) and provenance ``attrs``."""

    def __init__(self, groups: Mapping[str, Group], attrs: Mapping[str, Any] | None = None) -> None:
        self._groups = dict(groups)
        self.attrs: dict[str, Any] = dict(attrs or {})

    def __contains__(self, name: object) -> bool:
        return name in self._groups

    def __getitem__(self, name: str) -> Group:
        return self._groups[name]

    @property
    def groups(self) -> dict[str, Group]:
        """The groups by name, in the order given (the DataTree's children)."""
        return self._groups

    def to_xarray(self) -> Any:
        """The :class:`xarray.DataTree` of these groups, with the same attributes."""
        import xarray as xr

        tree = xr.DataTree.from_dict({name: group.to_xarray() for name, group in self._groups.items()})
        tree.attrs = dict(self.attrs)
        return tree


def draw_tree(groups: Mapping[str, Any]) -> Any:
    """The draws of a result from its groups: a :class:`DrawTree` when every group is a :class:`Group`.

    Otherwise (xarray Datasets from ArviZ, PyMC or nutpie) an
    :class:`xarray.DataTree`, any :class:`Group` among them converted.
    """
    if all(isinstance(group, Group) for group in groups.values()):
        return DrawTree(groups)
    import xarray as xr

    return xr.DataTree.from_dict(
        {name: group.to_xarray() if isinstance(group, Group) else group for name, group in groups.items()}
    )


class TreeField:
    """Descriptor of :attr:`abpool.result.Result.tree`: holds a :class:`DrawTree` until the tree is read.

    Reading the attribute turns a held :class:`DrawTree` into its
    :class:`xarray.DataTree` once and keeps it; :meth:`held` gives what is
    held without building anything, for abpool's own lookups. The field has
    no default: the descriptor is not a value.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_held"

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            raise AttributeError("tree is a field of each result")
        held = obj.__dict__[self._slot]
        if isinstance(held, DrawTree):
            held = held.to_xarray()
            obj.__dict__[self._slot] = held
        return held

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._slot] = value

    def held(self, obj: Any) -> Any:
        """The draws as held: a :class:`DrawTree`, or the DataTree once built or given."""
        return obj.__dict__[self._slot]
