"""The conditioned segments model's log density and gradient, written out and compiled once per machine.

The PyMC model of :mod:`abpool.segments.model` is the reference; this module
computes exactly its log density (constants included) and its gradient with
respect to the sampler's coordinates, by hand, in one numba kernel that serves
every shape: the data, the priors and the shape travel in one float64 buffer.
Numba caches the compiled kernel on disk (``cache=True``), so a new process
loads it instead of building and compiling a PyMC model.

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
PyMC model in the test suite.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

# Header of the data buffer: S, K, nu, location scale, sigma scale, V0, additive constant.
HEADER = 7


def _load_vector_math() -> bool:
    """Load glibc's vector maths library (libmvec) into LLVM's symbol table; whether it is usable here.

    Machine code of the kernel compiled with it calls its functions, so it is
    loaded on every import, before the kernel is compiled or loaded from the
    cache. Numba's own route to vector maths (Intel's SVML) needs an LLVM that
    pip's llvmlite is not built with, while libmvec is part of glibc on every
    x86-64 Linux. When numba already uses SVML, LLVM's vector library is
    numba's choice, and this stays out of the way.
    """
    import platform

    import llvmlite.binding as llvm

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64") or numba.config.USING_SVML:
        return False
    try:
        llvm.load_library_permanently("libmvec.so.1")
    except RuntimeError:  # pragma: no cover - a C library without libmvec (musl)
        return False
    return True


VECTOR_MATH = _load_vector_math()


@contextlib.contextmanager
def vector_math() -> Iterator[None]:
    """While the kernel compiles, let LLVM call libmvec's vector ``exp`` and ``log`` from its loops.

    The kernel spends nine tenths of its time in ``exp`` and ``log``, one cell
    at a time; with libmvec, LLVM vectorises its loops over segments and the
    gradient costs half as much. LLVM's choice of vector library is global to
    the process, so it is set only for the kernel's compilation and put back
    after: other packages' numba code compiled in the same process (and cached
    by them) never depends on libmvec. Elsewhere (another C library, another
    processor) nothing changes: the loops stay scalar and give the same numbers
    to within rounding.

    Examples
    --------
    >>> with vector_math():
    ...     pass
    """
    if not VECTOR_MATH:
        yield
        return
    import llvmlite.binding as llvm

    llvm.set_option("abpool", "-vector-library=LIBMVEC-X86")
    try:
        yield
    finally:
        llvm.set_option("abpool", "-vector-library=none")


def coordinate_count(segments: int, treatments: int) -> int:
    """Number of sampler coordinates for ``segments`` segments and ``treatments`` treatment arms.

    Examples
    --------
    >>> coordinate_count(2, 1)  # the article: log sigma_a, log sigma_b, mu_a_u, mu_b_u, a_u[2], b_u[2]
    8
    """
    return 2 + 2 * treatments + segments * (1 + treatments)


# The same count for the C entry points, which can call compiled functions only.
_coordinates = numba.njit(cache=True)(coordinate_count)


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


@numba.njit(cache=True)
def _buffer_length(segments, treatments):
    """Length of a :func:`pack` buffer: the header, four values per cell and two per slope."""
    return HEADER + 4 * segments * (treatments + 1) + 2 * segments * treatments


@numba.njit(cache=True)
def _unpack(data):
    """A :func:`pack` buffer's shape and arrays, in the order :func:`pack` writes them.

    Segments, treatments, then cell logit and precision, slope logit and
    precision, trials and successes, each arm-major (arm j's segments start at
    ``j * segments``), so that every loop over segments reads consecutive values.
    """
    segments = int(data[0])
    treatments = int(data[1])
    cells = segments * (treatments + 1)
    slopes = segments * treatments
    slope_start = HEADER + 2 * cells
    counts = slope_start + 2 * slopes
    return (
        segments,
        treatments,
        data[HEADER : HEADER + cells],
        data[HEADER + cells : slope_start],
        data[slope_start : slope_start + slopes],
        data[slope_start + slopes : counts],
        data[counts : counts + cells],
        data[counts + cells : counts + 2 * cells],
    )


# Reassociation lets LLVM vectorise the sums; NaN and infinity keep their meaning (no nnan/ninf),
# which the C wrapper relies on to report a non-finite density. The numpy error model drops the
# division-by-zero checks that would keep LLVM from vectorising the loops over segments.
@numba.njit(cache=True, error_model="numpy", fastmath={"nsz", "arcp", "contract", "reassoc"})
def log_density(x, data, grad):
    segments, treatments, logit, precision, slope_logit, slope_precision, trials, successes = _unpack(data)
    nu, location_scale, scale, variance, constant = data[2], data[3], data[4], data[5], data[6]
    t_scale = nu * location_scale * location_scale
    inv_scale2 = 1.0 / (scale * scale)

    u_mu_a = x[1 + treatments]
    first_a = 2 + 2 * treatments
    first_b = first_a + segments
    for i in range(grad.shape[0]):
        grad[i] = 0.0
    logp = constant

    # ------------------------------------------------------------ intercepts, forward
    sigma_a = math.exp(x[0])
    sigma2_a = sigma_a * sigma_a
    total_a = 1.0 / variance
    moment_a = 0.0
    weight2_a = 0.0
    weight2_est_a = 0.0
    for s in range(segments):
        p0 = precision[s]
        w = p0 / (1.0 + sigma2_a * p0)
        total_a += w
        moment_a += w * logit[s]
        weight2_a += w * w
        weight2_est_a += w * w * logit[s]
    root_a = math.sqrt(total_a)
    mu_a = moment_a / total_a + u_mu_a / root_a
    logp += -0.5 * math.log(total_a)
    logp += -0.5 * (nu + 1.0) * math.log1p(mu_a * mu_a / t_scale)
    logp += -0.5 * sigma2_a * inv_scale2 + x[0]

    a = np.empty(segments)
    root_r = np.empty(segments)
    z_a = np.empty(segments)
    r_a = np.empty(segments)
    g_a = np.empty(segments)
    for s in range(segments):
        p0 = precision[s]
        r = 1.0 / (1.0 + sigma2_a * p0)
        root = math.sqrt(r)
        z = (logit[s] - mu_a) * sigma_a * p0 * r + x[first_a + s] * root
        eta = mu_a + sigma_a * z
        a[s] = eta
        root_r[s] = root
        z_a[s] = z
        r_a[s] = r
        # One exponential serves the softplus and the logistic function; log(1 + e) rather than log1p(e),
        # and log r rather than -log1p(k), because only exp and log have vector versions; the difference
        # is far below the rounding of the sum (an absolute 1e-16 per cell, times its trials).
        e = math.exp(-abs(eta))
        logp += -0.5 * z * z + 0.5 * math.log(r) + successes[s] * eta - trials[s] * (math.log(1.0 + e) + max(eta, 0.0))
        g_a[s] = successes[s] - trials[s] * ((1.0 if eta >= 0.0 else e) / (1.0 + e))

    # ------------------------------------------------------------ each treatment arm, forward and back
    z_k = np.empty(segments)
    r_k = np.empty(segments)
    root_k = np.empty(segments)
    e_k = np.empty(segments)
    g_b = np.empty(segments)
    for t in range(treatments):
        sigma = math.exp(x[1 + t])
        sigma2 = sigma * sigma
        u_mu = x[2 + treatments + t]
        arm = (t + 1) * segments
        slope = t * segments
        total = 1.0 / variance
        moment = 0.0
        weight2 = 0.0
        weight2_est = 0.0
        for s in range(segments):
            q = slope_precision[slope + s]
            w = q / (1.0 + sigma2 * q)
            total += w
            moment += w * slope_logit[slope + s]
            weight2 += w * w
            weight2_est += w * w * slope_logit[slope + s]
        root = math.sqrt(total)
        mu = moment / total + u_mu / root
        logp += -0.5 * math.log(total)
        logp += -0.5 * (nu + 1.0) * math.log1p(mu * mu / t_scale)
        logp += -0.5 * sigma2 * inv_scale2 + x[1 + t]
        for s in range(segments):
            p = precision[arm + s]
            r = 1.0 / (1.0 + sigma2 * p)
            root_s = math.sqrt(r)
            est = logit[arm + s] - a[s]
            z = (est - mu) * sigma * p * r + x[first_b + slope + s] * root_s
            eta = a[s] + mu + sigma * z
            z_k[s] = z
            r_k[s] = r
            e_k[s] = est
            root_k[s] = root_s
            e = math.exp(-abs(eta))
            n, y = trials[arm + s], successes[arm + s]
            logp += -0.5 * z * z + 0.5 * math.log(r) + y * eta - n * (math.log(1.0 + e) + max(eta, 0.0))
            g_b[s] = y - n * ((1.0 if eta >= 0.0 else e) / (1.0 + e))
        # back through b = mu + sigma·z and z(e, mu, sigma, u), e = logit − a
        g_mu = -(nu + 1.0) * mu / (t_scale + mu * mu)
        g_sigma = 0.0
        for s in range(segments):
            p = precision[arm + s]
            k = sigma2 * p
            r = r_k[s]
            g_z = g_b[s] * sigma - z_k[s]
            g_mu += g_b[s] - g_z * sigma * p * r
            u_b = x[first_b + slope + s]
            dz_dsigma = (e_k[s] - mu) * p * r * r * (1.0 - k) - u_b * sigma * p * r * root_k[s]
            g_sigma += g_b[s] * z_k[s] + g_z * dz_dsigma - sigma * p * r
            grad[first_b + slope + s] = g_z * root_k[s]
            g_a[s] += g_b[s] - g_z * sigma * p * r
        # back through mu = M/T + u/√T, the log T term, and T(sigma), M(sigma)
        grad[2 + treatments + t] = g_mu / root
        g_total = g_mu * (-moment / (total * total) - 0.5 * u_mu / (total * root)) - 0.5 / total
        g_moment = g_mu / total
        g_sigma += g_total * (-2.0 * sigma * weight2) + g_moment * (-2.0 * sigma * weight2_est)
        grad[1 + t] = g_sigma * sigma - sigma2 * inv_scale2 + 1.0

    # ------------------------------------------------------------ intercepts, back
    g_mu_a = -(nu + 1.0) * mu_a / (t_scale + mu_a * mu_a)
    g_sigma_a = 0.0
    for s in range(segments):
        p0 = precision[s]
        k = sigma2_a * p0
        r = r_a[s]
        g_z = g_a[s] * sigma_a - z_a[s]
        g_mu_a += g_a[s] - g_z * sigma_a * p0 * r
        dz_dsigma = (logit[s] - mu_a) * p0 * r * r * (1.0 - k) - x[first_a + s] * sigma_a * p0 * r * root_r[s]
        g_sigma_a += g_a[s] * z_a[s] + g_z * dz_dsigma - sigma_a * p0 * r
        grad[first_a + s] = g_z * root_r[s]
    grad[1 + treatments] = g_mu_a / root_a
    g_total = g_mu_a * (-moment_a / (total_a * total_a) - 0.5 * u_mu_a / (total_a * root_a)) - 0.5 / total_a
    g_moment = g_mu_a / total_a
    g_sigma_a += g_total * (-2.0 * sigma_a * weight2_a) + g_moment * (-2.0 * sigma_a * weight2_est_a)
    grad[0] = g_sigma_a * sigma_a - sigma2_a * inv_scale2 + 1.0
    return logp


def log_density_and_gradient(x: NDArray, data: NDArray) -> tuple[float, NDArray]:
    """The log density at ``x`` and its gradient, for a buffer from :func:`pack` (for tests and checks).

    Examples
    --------
    >>> import numpy as np
    >>> buffer = np.array([1, 1, 3.0, 1.0, 1.0, 3.0, 0.0, -0.8, 0.0, 0.4, 0.0, 0.0, 0.0, 10, 10, 3, 4])
    >>> value, gradient = log_density_and_gradient(np.zeros(coordinate_count(1, 1)), buffer)
    >>> bool(np.isfinite(value)), gradient.shape
    (True, (6,))
    """
    grad = np.empty_like(np.asarray(x, dtype=float))
    with vector_math():
        value = log_density(np.ascontiguousarray(x, dtype=float), data, grad)
    return float(value), grad


def parameters_at(x: NDArray, data: NDArray) -> NDArray[np.float64]:
    """:func:`model_parameters` at ``x`` as a new array, for a buffer from :func:`pack` (for tests and checks).

    Examples
    --------
    >>> import numpy as np
    >>> buffer = np.array([1, 1, 3.0, 1.0, 1.0, 3.0, 0.0, -0.8, 0.0, 0.4, 0.0, 0.0, 0.0, 10, 10, 3, 4])
    >>> parameters_at(np.zeros(coordinate_count(1, 1)), buffer)[:2].tolist()  # sigma_a, sigma_b
    [1.0, 1.0]
    """
    out = np.empty(np.size(x))
    with vector_math():
        model_parameters(np.ascontiguousarray(x, dtype=float), data, out)
    return out


@numba.njit(cache=True, error_model="numpy", fastmath={"nsz", "arcp", "contract", "reassoc"})
def model_parameters(x, data, out):
    """The model's parameters at sampler coordinates ``x``, written to ``out`` (as long as ``x``).

    In order: ``sigma_a``, ``sigma_b[K]``, ``mu_a``, ``mu_b[K]``, ``a[S]`` and
    ``b[S, K]`` (segment-major). The same arithmetic as the forward pass of
    :func:`log_density` and as :func:`abpool.segments.model.complete_draws`,
    which rebuilds them from the PyMC model's draws; the sampler calls this for
    each draw it keeps, on its own threads.
    """
    segments, treatments, logit, precision, slope_logit, slope_precision, _, _ = _unpack(data)
    variance = data[5]
    first_a = 2 + 2 * treatments
    first_b = first_a + segments

    sigma_a = math.exp(x[0])
    sigma2_a = sigma_a * sigma_a
    total_a = 1.0 / variance
    moment_a = 0.0
    for s in range(segments):
        w = precision[s] / (1.0 + sigma2_a * precision[s])
        total_a += w
        moment_a += w * logit[s]
    mu_a = moment_a / total_a + x[1 + treatments] / math.sqrt(total_a)
    out[0] = sigma_a
    out[1 + treatments] = mu_a
    for s in range(segments):
        p0 = precision[s]
        r = 1.0 / (1.0 + sigma2_a * p0)
        z = (logit[s] - mu_a) * sigma_a * p0 * r + x[first_a + s] * math.sqrt(r)
        out[first_a + s] = mu_a + sigma_a * z
    for t in range(treatments):
        sigma = math.exp(x[1 + t])
        sigma2 = sigma * sigma
        arm = (t + 1) * segments
        slope = t * segments
        total = 1.0 / variance
        moment = 0.0
        for s in range(segments):
            q = slope_precision[slope + s]
            w = q / (1.0 + sigma2 * q)
            total += w
            moment += w * slope_logit[slope + s]
        mu = moment / total + x[2 + treatments + t] / math.sqrt(total)
        out[1 + t] = sigma
        out[2 + treatments + t] = mu
        for s in range(segments):
            p = precision[arm + s]
            r = 1.0 / (1.0 + sigma2 * p)
            z = (logit[arm + s] - out[first_a + s] - mu) * sigma * p * r + x[first_b + slope + s] * math.sqrt(r)
            out[first_b + s * treatments + t] = mu + sigma * z


# --------------------------------------------------------------------------- nutpie
# The kernel reaches nutpie's Rust sampler as C function pointers through nutpie's private `_lib`, as
# nutpie's own PyMC path does; tests/test_segments_kernel.py fails loudly if that interface changes.
NUTPIE_VERSIONS = ("0.16.",)
_LOGP_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)
_EXPAND_SIGNATURE = numba.types.int64(
    numba.types.uint64,
    numba.types.uint64,
    numba.types.CPointer(numba.types.double),
    numba.types.CPointer(numba.types.double),
    numba.types.voidptr,
)


def _c_log_density(dim, x_, grad_, logp_, user_data_):
    """nutpie's C interface to :func:`log_density`: 0 on success, 3/4 for a non-finite gradient/density."""
    head = numba.carray(user_data_, (HEADER,), dtype=np.float64)
    segments, treatments = int(head[0]), int(head[1])
    data = numba.carray(user_data_, (_buffer_length(segments, treatments),), dtype=np.float64)
    if dim != _coordinates(segments, treatments):
        return -1
    x = numba.carray(x_, (dim,))
    grad = numba.carray(grad_, (dim,))
    value = log_density(x, data, grad)
    logp_[0] = value
    for i in range(dim):
        if not np.isfinite(grad[i]):
            return 3
    if not np.isfinite(value):
        return 4
    return 0


def _c_expand(dim, expanded, x_, out_, user_data_):
    """nutpie's C interface for the draws it keeps: the model's parameters (:func:`model_parameters`)."""
    head = numba.carray(user_data_, (HEADER,), dtype=np.float64)
    segments, treatments = int(head[0]), int(head[1])
    data = numba.carray(user_data_, (_buffer_length(segments, treatments),), dtype=np.float64)
    if expanded != dim or dim != _coordinates(segments, treatments):
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    model_parameters(x, data, out)
    return 0


class _CacheMissError(Exception):
    """The kernel is not in numba's cache yet."""


def _cached_cfunc(function: Any, signature: Any, *, compile_on_miss: bool = True) -> Any:
    """``numba.cfunc(signature, cache=True)(function)``, loading a cached entry without numba's compiler registries.

    Before it even looks in its cache, numba loads the typing and lowering
    registries of everything it can compile (all of NumPy, and SciPy for BLAS):
    two thirds of a warm one-off fit's sampling time. Linking the cached
    machine code needs only numba's runtime, which the kernel allocates with,
    so that is all this loads; a cache miss compiles as usual (or, with
    ``compile_on_miss=False``, raises :class:`_CacheMissError`), and compiling
    loads the registries itself. Should numba's internals differ from the ones
    this relies on, the plain decorator is used (tests/test_segments_kernel.py
    says so).
    """
    try:
        from numba.core import sigutils
        from numba.core.caching import FunctionCache
        from numba.core.ccallback import CFunc
        from numba.core.runtime import rtsys
    except ImportError:  # pragma: no cover - another numba
        return numba.cfunc(signature, cache=True)(function)
    if not all(hasattr(FunctionCache, name) for name in ("_load_overload", "_guard_against_spurious_io_errors")):
        return numba.cfunc(signature, cache=True)(function)  # pragma: no cover - another numba

    class RuntimeOnlyCache(FunctionCache):
        def load_overload(self, sig: Any, target_context: Any) -> Any:
            rtsys.initialize(target_context)
            with self._guard_against_spurious_io_errors():
                found = self._load_overload(sig, target_context)
            if found is None and not compile_on_miss:
                raise _CacheMissError
            return found

    compiled = CFunc(function, sigutils.normalize_signature(signature), locals={}, options={})
    compiled._cache = RuntimeOnlyCache(function)
    compiled.compile()
    return compiled


def _load_or_compile(*, compile_on_miss: bool) -> tuple[Any, Any]:
    with vector_math():
        return (
            _cached_cfunc(_c_log_density, _LOGP_SIGNATURE, compile_on_miss=compile_on_miss),
            _cached_cfunc(_c_expand, _EXPAND_SIGNATURE, compile_on_miss=compile_on_miss),
        )


def compile_into_cache() -> None:
    """Compile the kernel into numba's on-disk cache (run in a child process by :func:`c_functions`)."""
    _load_or_compile(compile_on_miss=True)


@functools.cache
def c_functions() -> tuple[Any, Any]:
    """The kernel's C entry points (log density, expand), loaded from numba's on-disk cache.

    The first use on a machine compiles them into the cache (a few seconds,
    reported through the ``abpool`` logger), in a child process; every process,
    this one included, then loads the cached machine code. The code a fresh
    compile runs in its own process is not always the code numba writes to the
    cache: floating-point contractions differ in the last bits (1e-13 in the
    posterior). Loading it everywhere gives the first run on a machine the
    numbers every later run gives. Should the child fail, or the cache be
    unwritable, this process compiles the kernel itself.

    Numba writes its cache next to this file, or under the user's cache
    directory when the install is read-only, or under ``NUMBA_CACHE_DIR`` when
    that is set; it writes each entry to a temporary file and renames it, so
    concurrent processes are safe.
    """
    import subprocess
    import sys

    try:
        return _load_or_compile(compile_on_miss=False)
    except _CacheMissError:
        pass
    start = time.perf_counter()
    command = [sys.executable, "-c", "from abpool.segments.density import compile_into_cache; compile_into_cache()"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(command, capture_output=True, timeout=600, check=False)
    try:
        found = _load_or_compile(compile_on_miss=False)
    except _CacheMissError:
        found = _load_or_compile(compile_on_miss=True)
    logging.getLogger("abpool").info(
        "compiled abpool's segments kernel for this machine in %.0f s (once: later runs load it from numba's cache)",
        time.perf_counter() - start,
    )
    return found


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
    log_density_c, expand_c = c_functions()
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
        lib.LogpFunc(log_density_c.address, buffer.ctypes.data, buffer),
        lib.ExpandFunc(n_dim, n_dim, expand_c.address, buffer.ctypes.data, buffer),
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
