"""The conditioned segments model's log density and gradient, written out in C and compiled at install time.

The PyMC model of :mod:`abpool.segments.model` is the reference; the C kernel
(``abpool/segments/_kernel.c``, built into ``abpool.segments._kernel`` when
abpool is installed) computes exactly its log density (constants included)
and its gradient with respect to the sampler's coordinates, by hand, for every
shape: the data, the priors and the shape travel in one float64 buffer. nutpie's
Rust sampler calls it through C function pointers, so no process builds or
compiles a model.

Coordinates, in order (``S`` segments, ``K`` treatment arms)::

    log sigma_a, log sigma_b[K], mu_a_u, mu_b_u[K], a_u[S], b_u[K, S]

the same as PyMC's value variables of the conditioned form (``sigma`` on the
log scale). The model, with ``k = sigma² · precision`` per cell::

    mu   = (Σ w·est)/T + u/√T,        w = prec/(1 + sigma²·prec),  T = 1/V0 + Σ w
    a_s  = mu_a + sigma_a·z_s,        z_s = (est_s − mu)·sigma·prec_s/(1 + k_s) + u_s/√(1 + k_s)
    b_ks = mu_b_k + sigma_b_k·z_ks,   with est_ks = logit_ks − a_s

    log p = Σ StudentT(mu) + Σ [HalfNormal(sigma) + log sigma] − ½ Σ log T
            + Σ (−½ z² − ½ log(1 + k)) + Σ cells [y·η − n·softplus(η)]

The gradient is checked against PyTensor's automatic differentiation of the
PyMC model in the test suite, through the same entry points nutpie calls.
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Header of the data buffer: S, K, nu, location scale, sigma scale, V0, additive constant (as _kernel.c reads it).
HEADER = 7


def coordinate_count(segments: int, treatments: int) -> int:
    """Number of sampler coordinates for ``segments`` segments and ``treatments`` treatment arms.

    Examples
    --------
    >>> coordinate_count(2, 1)  # the article: log sigma_a, log sigma_b, mu_a_u, mu_b_u, a_u[2], b_u[2]
    8
    """
    return 2 + 2 * treatments + segments * (1 + treatments)


def pack(model_data: dict[str, NDArray], nu: float, location_scale: float, scale: float) -> NDArray[np.float64]:
    """The kernel's data buffer from :func:`abpool.segments.model.model_data` (conditioned form) and the priors.

    Examples
    --------
    >>> import pandas as pd
    >>> from abpool.data import load_cells
    >>> from abpool.segments.layout import layout_from_cells
    >>> from abpool.segments.model import model_data
    >>> frame = pd.DataFrame({"segment": ["CA", "CA", "CN", "CN"], "arm": ["0", "1", "0", "1"],
    ...                       "trials": 100, "successes": [30, 50, 55, 60]})
    >>> layout = layout_from_cells(load_cells(frame, segment="segment"), "0")
    >>> buffer = pack(model_data(layout, "conditioned"), nu=3.0, location_scale=1.0, scale=1.0)
    >>> buffer[:2].tolist(), buffer.size  # 2 segments, 1 treatment arm; a header and 6 arrays
    ([2.0, 1.0], 27)
    """
    gammaln = math.lgamma
    trials = np.asarray(model_data["trials"], dtype=float)
    segments, arms = trials.shape
    treatments = arms - 1
    variance = location_scale**2 * (nu / (nu - 2.0) if nu > 2.0 else 3.0)
    student_t = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(location_scale)
    half_normal = 0.5 * math.log(2.0 / math.pi) - math.log(scale)
    constant = (1 + treatments) * (student_t + half_normal)
    header = np.array([segments, treatments, nu, location_scale, scale, variance, constant], dtype=float)
    parts = [
        model_data["cell_logit"],
        model_data["cell_precision"],
        model_data["slope_logit"],
        model_data["slope_precision"],
        model_data["trials"],
        model_data["successes"],
    ]
    # Arm-major (each arm's segments consecutive), the order the kernel's loops read them in.
    return np.ascontiguousarray(np.concatenate([header, *(np.asarray(p, dtype=float).T.ravel() for p in parts)]))


@dataclass(frozen=True)
class CFunctions:
    """Addresses of the kernel's two C entry points, in nutpie's calling convention.

    ``log_density(dim, x, grad, logp, data) -> int64``: the log density at
    ``x`` into ``*logp`` and its gradient into ``grad``; 0 on success, 3 or 4
    for a non-finite gradient or density, -1 for a ``dim`` that is not the
    buffer's. ``expand(dim, expanded, x, out, data) -> int64``: the model's
    parameters at ``x`` (sigma_a, sigma_b[K], mu_a, mu_b[K], a[S], b[S, K]).
    ``vector_math``: whether the build's loops call libmvec's vector ``exp``
    and ``log`` (GCC on x86-64 Linux), which halves the cost of a gradient.
    """

    log_density: int
    expand: int
    vector_math: bool


@functools.cache
def c_functions() -> CFunctions:
    """The compiled kernel's entry points, refused in one line when abpool was installed without it.

    Examples
    --------
    >>> c_functions().log_density > 0
    True
    """
    from abpool.errors import AbpoolError

    try:
        from abpool.segments import _kernel
    except ImportError as error:
        raise AbpoolError(
            f"abpool's compiled segments kernel is missing ({error}); reinstall abpool with pip, which builds it "
            "(a C compiler and the Python headers are needed), or use PyMC's sampler (--sampler pymc, sampler='pymc')"
        ) from None
    return CFunctions(_kernel.log_density_address, _kernel.expand_address, bool(_kernel.VECTOR_MATH))


_LOG_DENSITY = ctypes.CFUNCTYPE(
    ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)
_EXPAND = ctypes.CFUNCTYPE(
    ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)


def _checked_buffer(x: NDArray, data: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.ascontiguousarray(x, dtype=np.float64)
    data = np.ascontiguousarray(data, dtype=np.float64)
    segments, treatments = int(data[0]), int(data[1])
    if x.ndim != 1 or x.size != coordinate_count(segments, treatments):
        raise ValueError(
            f"x has {x.size} coordinates; a buffer of {segments} segments × {treatments} treatments needs "
            f"{coordinate_count(segments, treatments)}"
        )
    return x, data


def log_density_and_gradient(x: NDArray, data: NDArray) -> tuple[float, NDArray]:
    """The log density at ``x`` and its gradient, for a buffer from :func:`pack`, through nutpie's entry point.

    Examples
    --------
    >>> import numpy as np
    >>> buffer = np.array([1, 1, 3.0, 1.0, 1.0, 3.0, 0.0, -0.8, 0.0, 0.4, 0.0, 0.0, 0.0, 10, 10, 3, 4])
    >>> value, gradient = log_density_and_gradient(np.zeros(coordinate_count(1, 1)), buffer)
    >>> bool(np.isfinite(value)), gradient.shape
    (True, (6,))
    """
    x, data = _checked_buffer(x, data)
    grad = np.empty_like(x)
    value = np.empty(1)
    _LOG_DENSITY(c_functions().log_density)(
        x.size, x.ctypes.data, grad.ctypes.data, value.ctypes.data, data.ctypes.data
    )
    return float(value[0]), grad


def parameters_at(x: NDArray, data: NDArray) -> NDArray[np.float64]:
    """The model's parameters at ``x``, for a buffer from :func:`pack`, through nutpie's entry point.

    In order: ``sigma_a``, ``sigma_b[K]``, ``mu_a``, ``mu_b[K]``, ``a[S]`` and
    ``b[S, K]`` (segment-major): the forward pass of the log density, and the
    arithmetic of :func:`abpool.segments.model.complete_draws`, which rebuilds
    them from the PyMC model's draws. The sampler calls it for each draw it
    keeps, on its own threads.

    Examples
    --------
    >>> import numpy as np
    >>> buffer = np.array([1, 1, 3.0, 1.0, 1.0, 3.0, 0.0, -0.8, 0.0, 0.4, 0.0, 0.0, 0.0, 10, 10, 3, 4])
    >>> parameters_at(np.zeros(coordinate_count(1, 1)), buffer)[:2].tolist()  # sigma_a, sigma_b
    [1.0, 1.0]
    """
    x, data = _checked_buffer(x, data)
    out = np.empty_like(x)
    _EXPAND(c_functions().expand)(x.size, x.size, x.ctypes.data, out.ctypes.data, data.ctypes.data)
    return out


# --------------------------------------------------------------------------- nutpie
# The kernel reaches nutpie's Rust sampler as C function pointers through nutpie's private `_lib`, as
# nutpie's own PyMC path does; tests/test_segments_kernel.py fails loudly if that interface changes.
NUTPIE_VERSIONS = ("0.16.",)


def check_nutpie() -> str:
    """The installed nutpie's version, refused in one line when it is not one the kernel was written for."""
    from importlib.metadata import version

    from abpool.errors import AbpoolError

    found = version("nutpie")
    if not found.startswith(NUTPIE_VERSIONS):
        raise AbpoolError(
            f"nutpie {found} is installed, and abpool's segments kernel talks to nutpie "
            f"{', '.join(v + 'x' for v in NUTPIE_VERSIONS)}; install one (pip install 'nutpie>=0.16,<0.17') "
            "or pass sampler='pymc'"
        )
    return found


def nutpie_lib() -> Any:
    """nutpie's compiled core, ``nutpie._lib``, loaded without the ``nutpie`` package.

    The package's ``__init__`` imports ArviZ, matplotlib and much of SciPy to
    return InferenceData; the sampler itself needs none of them.
    """
    import glob
    import importlib.util
    import os
    import sys

    if "nutpie._lib" in sys.modules:
        return sys.modules["nutpie._lib"]
    package = importlib.util.find_spec("nutpie")
    if package is None or not package.submodule_search_locations:
        raise ImportError("nutpie is not installed; pip install 'nutpie>=0.16,<0.17'")
    (path,) = glob.glob(os.path.join(package.submodule_search_locations[0], "_lib*.so"))
    spec = importlib.util.spec_from_file_location("nutpie._lib", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["nutpie._lib"] = module
    return module


class Draws:
    """A fit's draws by group (:class:`abpool.draws.Group`), with the little of InferenceData's interface used."""

    def __init__(self, **groups: Any) -> None:
        self._groups = dict(groups)

    def groups(self) -> list[str]:
        return list(self._groups)

    def __contains__(self, name: str) -> bool:
        return name in self._groups

    def __getitem__(self, name: str) -> Any:
        return self._groups[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._groups[name] = value

    def __getattr__(self, name: str) -> Any:
        groups = self.__dict__.get("_groups", {})
        if name in groups:
            return groups[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_groups":
            super().__setattr__(name, value)
        else:
            self._groups[name] = value


@dataclass(frozen=True)
class KernelModel:
    """The kernel and one experiment's data buffer, ready for :func:`sample_kernel`."""

    data: NDArray[np.float64]
    segments: int
    treatments: int
    prior_scale: float

    @property
    def n_dim(self) -> int:
        return coordinate_count(self.segments, self.treatments)

    def draw(self, **options: Any) -> Draws:
        """Sample this model (see :func:`sample_kernel`); :func:`abpool.sampling.sample_nuts` calls this."""
        return sample_kernel(self, **options)


def sample_kernel(
    model: KernelModel,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
    target_accept: float,
    progressbar: bool,
) -> Draws:
    """Sample the kernel with nutpie's NUTS (diagonal mass matrix adaptation, as ``nutpie.sample``).

    Returns the kept draws of the model's parameters (``posterior``:
    ``sigma_a``, ``sigma_b``, ``mu_a``, ``mu_b``, ``a``, ``b``; see
    :func:`model_parameters`) and the sampler statistics (``sample_stats``:
    ``diverging``, ``depth``, ``n_steps``, ``step_size``), as :class:`abpool.draws.Group`.
    """
    import pyarrow

    from abpool.draws import Group

    lib = nutpie_lib()
    check_nutpie()
    kernel = c_functions()
    segments, treatments, n_dim = model.segments, model.treatments, model.n_dim
    names = ["sigma_a", "sigma_b", "mu_a", "mu_b", "a", "b"]
    shapes = [(), (treatments,), (), (treatments,), (segments,), (segments, treatments)]
    dims = {"sigma_b": ["treatment"], "mu_b": ["treatment"], "a": ["segment"], "b": ["segment", "treatment"]}
    dim_sizes = {"segment": segments, "treatment": treatments}
    log_scale = math.log(model.prior_scale)

    def initial_point(point_seed: int) -> NDArray[np.float64]:
        # PyMC's default for these variables: the support point (sigma at its prior scale, offsets at 0),
        # jittered uniformly by ±1 on the sampler's scale.
        rng = np.random.default_rng(point_seed)
        start = np.zeros(n_dim)
        start[: 1 + treatments] = log_scale
        return start + rng.uniform(-1.0, 1.0, n_dim)

    buffer = np.ascontiguousarray(model.data, dtype=np.float64)
    settings = lib.PyNutsSettings.Diag(seed)
    settings.num_tune = tune
    settings.num_draws = draws
    settings.num_chains = chains
    settings.target_accept = target_accept
    variables = lib.PyVariable.new_variables(
        names, ["float64"] * len(names), [list(shape) for shape in shapes], dim_sizes, dims
    )
    sampler_model = lib.PyMcModel(
        lib.LogpFunc(kernel.log_density, buffer.ctypes.data, buffer),
        lib.ExpandFunc(n_dim, n_dim, kernel.expand, buffer.ctypes.data, buffer),
        variables,
        n_dim,
        dim_sizes,
        {"segment": [str(s) for s in range(segments)], "treatment": [str(k) for k in range(treatments)]},
        initial_point,
        None,
    )
    progress = lib.ProgressType.indicatif(100) if progressbar else lib.ProgressType.none()
    sampler = lib.PySampler.from_pymc(settings, cores, sampler_model, progress, lib.PyStorage.arrow())
    sampler.wait(None)
    draw_batches, stat_batches = sampler.take_results().get_arrow_trace()

    def column(batch: Any, name: str) -> NDArray:
        values = pyarrow.array(batch.column(name))
        if hasattr(values, "flatten"):
            values = values.flatten()
        return values.to_numpy(zero_copy_only=False)

    kept = [~column(stat, "tuning").astype(bool) for stat in stat_batches]
    posterior: dict[str, Any] = {
        name: (
            ["chain", "draw", *dims.get(name, [])],
            np.stack(
                [column(batch, name).reshape(-1, *shape)[keep] for batch, keep in zip(draw_batches, kept, strict=True)]
            ),
        )
        for name, shape in zip(names, shapes, strict=True)
    }
    stats = {
        name: (
            ["chain", "draw"],
            np.stack([column(stat, name)[keep] for stat, keep in zip(stat_batches, kept, strict=True)]),
        )
        for name in ("diverging", "depth", "n_steps", "step_size")
    }
    coords = {"chain": np.arange(chains), "draw": np.arange(draws), "segment": np.arange(segments)}
    coords["treatment"] = np.arange(treatments)
    return Draws(posterior=Group(posterior, coords), sample_stats=Group(stats, coords))
