"""Running NUTS and judging its output: the only module that calls a sampler.

:func:`sample_nuts` runs NUTS — nutpie's (compiled once per model structure,
then refitted with new data through ``with_data``) or PyMC's — computes
divergences, R-hat and bulk and tail ESS on every named parameter, and on
trouble refits once, changing what the trouble calls for (:func:`refit_settings`). It never hides a bad fit:
the returned :class:`~abpool.diagnostics.Diagnostics` says whether the fit
converged and why not. It prints nothing unless asked for a progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from abpool.diagnostics import Diagnostics, mcmc_diagnostics

RETRY_TARGET_ACCEPT = 0.99
# A fit that mixed slowly without diverging (a hierarchy's scale among thousands of sparse segments) is not
# helped by smaller steps: at 1,000-2,000 segments × 10 users its refit at 0.99 took twice the leapfrog steps
# and still missed R-hat (1.015-1.018, ESS of sigma_b 150-420). Three times the tuning and twice the draws
# converged (R-hat 1.003-1.004, ESS 1,080-1,600).
RETRY_TUNE_FACTOR = 3
RETRY_DRAWS_FACTOR = 2
SAMPLERS = ("nutpie", "pymc")
_CACHE_SIZE = 16
_compiled: OrderedDict[Hashable, Any] = OrderedDict()
_CHATTY_LOGGERS = ("pymc", "pymc.sampling", "pymc.sampling.mcmc", "pytensor", "nutpie")


@contextlib.contextmanager
def quiet_samplers() -> Iterator[None]:
    """Silence samplers' log chatter ("Initializing NUTS…"): abpool reports diagnostics itself."""
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def compiled_model(key: Hashable, build: Callable[[], Any]) -> Any:
    """Return nutpie's compiled form of the model ``build()`` makes, compiling once per ``key``.

    ``key`` must identify the model's structure (shapes, parameterisation,
    priors) but not its data, which :func:`sample_nuts` swaps in with
    ``with_data``.
    """
    if key in _compiled:
        _compiled.move_to_end(key)
        return _compiled[key]
    import nutpie

    with quiet_samplers():
        compiled = nutpie.compile_pymc_model(build())
    _compiled[key] = compiled
    if len(_compiled) > _CACHE_SIZE:
        _compiled.popitem(last=False)
    return compiled


def refit_settings(diagnostics: Diagnostics, *, target_accept: float, tune: int, draws: int) -> tuple[float, int, int]:
    """``(target_accept, tune, draws)`` of the refit after a fit failed the checks in ``diagnostics``.

    Divergences mean the steps were too large for the posterior's curvature: the refit targets
    :data:`RETRY_TARGET_ACCEPT`. An R-hat or effective-sample-size failure means the chains mixed
    too slowly: the refit tunes :data:`RETRY_TUNE_FACTOR` times longer and keeps
    :data:`RETRY_DRAWS_FACTOR` times the draws. A fit with both problems gets both.

    Examples
    --------
    >>> from abpool.diagnostics import Diagnostics
    >>> diverged = Diagnostics("mcmc", False, 3, 1.004, 900.0, 800.0, 1_000, 4)
    >>> refit_settings(diverged, target_accept=0.95, tune=500, draws=1_000)
    (0.99, 500, 1000)
    >>> slow = Diagnostics("mcmc", False, 0, 1.018, 417.0, 361.0, 1_000, 4)
    >>> refit_settings(slow, target_accept=0.8, tune=500, draws=1_000)
    (0.8, 1500, 2000)
    """
    if diagnostics.divergences:
        target_accept = max(target_accept, RETRY_TARGET_ACCEPT)
    if not diagnostics.mixed:
        tune, draws = tune * RETRY_TUNE_FACTOR, draws * RETRY_DRAWS_FACTOR
    return target_accept, tune, draws


def _draw_once(
    model: Any,
    sampler: str,
    data: dict[str, Any] | None,
    *,
    draws: int,
    tune: int,
    chains: int,
    cores: int,
    seed: int,
    target_accept: float,
    progressbar: bool,
) -> Any:
    if hasattr(model, "draw"):
        # A model that samples itself (the segments model's compiled log density).
        return model.draw(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            target_accept=target_accept,
            progressbar=progressbar,
        )
    if sampler == "nutpie":
        import nutpie

        compiled = model if data is None else model.with_data(**data)
        with quiet_samplers():
            return nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                seed=seed,
                target_accept=target_accept,
                progress_bar=progressbar,
                save_warmup=False,
            )
    import pymc as pm

    with model, quiet_samplers():
        if data is not None:
            pm.set_data(data)
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            target_accept=target_accept,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )


def inference_library(sampler: str) -> tuple[str, str]:
    """Name and version of the library that drew the samples (ArviZ's ``inference_library`` attributes)."""
    from importlib.metadata import version

    return sampler, version(sampler)


def sample_nuts(
    model: Any,
    *,
    var_names: list[str],
    draws: int,
    tune: int,
    chains: int,
    random_seed: int,
    target_accept: float = 0.9,
    progressbar: bool = False,
    retry: bool = True,
    sampler: str = "pymc",
    data: dict[str, Any] | None = None,
    complete: Callable[[Any], Any] | None = None,
) -> tuple[Any, Diagnostics]:
    """Sample with NUTS, check convergence of every named parameter, and refit once if needed.

    Parameters
    ----------
    model : pymc.Model or nutpie compiled model
        A :class:`pymc.Model` for ``sampler="pymc"``; the result of
        :func:`compiled_model` for ``sampler="nutpie"``.
    var_names : list of str
        Parameters whose R-hat and ESS decide convergence: every parameter the
        result reports. Each must be in the posterior (after ``complete``).
    draws, tune, chains : int
        Kept draws per chain, tuning steps per chain, chains (run in parallel on
        the available cores).
    random_seed : int
        Seed; the refit uses ``random_seed + 1``.
    target_accept : float
        NUTS target acceptance of the first attempt.
    progressbar : bool
        Show the sampler's progress bar.
    retry : bool
        Refit once when the first fit fails a check: at ``target_accept=0.99`` after divergences, with
        longer tuning and more draws after an R-hat or ESS failure (:func:`refit_settings`).
    sampler : {"pymc", "nutpie"}
    data : dict, optional
        New values for the model's ``pm.Data`` containers (same shapes).
    complete : callable, optional
        Turns the sampler's InferenceData into the one reported (adds the
        parameters a model rebuilds from its sampling coordinates) before it is
        checked, so that what is reported is what is checked.

    Returns
    -------
    idata : arviz.InferenceData
    diagnostics : Diagnostics
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    cores = min(chains, _available_cores())
    attempts = 0
    accept = target_accept
    while True:
        attempts += 1
        idata = _draw_once(
            model,
            sampler,
            data,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=random_seed + attempts - 1,
            target_accept=accept,
            progressbar=progressbar,
        )
        if complete is not None:
            idata = complete(idata)
        divergences = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata else 0
        diagnostics = mcmc_diagnostics(
            idata.posterior, var_names, divergences=divergences, target_accept=accept, attempts=attempts, tune=tune
        )
        if diagnostics.converged or not retry or attempts >= 2:
            break
        accept, tune, draws = refit_settings(diagnostics, target_accept=accept, tune=tune, draws=draws)
    return idata, diagnostics


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
