"""Running NUTS and judging its output: the only module that calls a sampler.

:func:`sample_nuts` runs NUTS — nutpie's (compiled once per model structure,
then refitted with new data through ``with_data``) or PyMC's — computes
divergences, R-hat and bulk and tail ESS on every named parameter, and on
trouble refits once with a higher ``target_accept``. It never hides a bad fit:
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
        Refit once with ``target_accept=0.99`` when the first fit fails a check.
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
            idata.posterior, var_names, divergences=divergences, target_accept=accept, attempts=attempts
        )
        if diagnostics.converged or not retry or attempts >= 2:
            break
        accept = max(accept, RETRY_TARGET_ACCEPT)
    return idata, diagnostics


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
