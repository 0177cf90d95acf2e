"""Running samplers and judging their output: the only module that calls one.

:func:`sample_nuts` runs NUTS — nutpie's (compiled once per model structure,
then refitted with new data through ``with_data``) or PyMC's — computes
divergences, R-hat and bulk and tail ESS on the named variables, and on trouble
refits once with a higher ``target_accept``. It never hides a bad fit: the
returned :class:`Diagnostics` says whether the fit converged and why not.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from abpool.errors import ConvergenceWarning

RHAT_LIMIT = 1.01
ESS_PER_CHAIN = 100
RETRY_TARGET_ACCEPT = 0.99
SAMPLERS = ("nutpie", "pymc")
_CACHE_SIZE = 16
_compiled: OrderedDict[Hashable, Any] = OrderedDict()


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of one fit.

    Attributes
    ----------
    engine : str
        ``"exact"`` or ``"mcmc"``.
    converged : bool
        Whether every check passed.
    divergences : int
        Divergent transitions after tuning (MCMC only; 0 for the exact engine).
    max_rhat : float or None
        Largest rank-normalised split R-hat (MCMC only).
    min_ess_bulk, min_ess_tail : float
        Smallest effective sample sizes (the number of draws for independent draws).
    draws, chains : int
        Draws per chain and number of chains kept.
    edge_mass : float or None
        Exact engine: posterior mass estimated beyond the grid.
    target_accept : float or None
        NUTS target acceptance of the kept fit.
    attempts : int
        Fits run (2 when a refit was needed).
    warnings : list of str
        Plain-language problems found.
    """

    engine: str
    converged: bool
    divergences: int
    max_rhat: float | None
    min_ess_bulk: float
    min_ess_tail: float
    draws: int
    chains: int
    edge_mass: float | None = None
    grid_points: int | None = None
    target_accept: float | None = None
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


def mcmc_diagnostics(idata: Any, var_names: list[str], *, target_accept: float, attempts: int) -> Diagnostics:
    """Compute divergences, R-hat and ESS for ``var_names`` of a PyMC fit."""
    import arviz as az

    posterior = idata.posterior
    chains = int(posterior.sizes["chain"])
    draws = int(posterior.sizes["draw"])
    divergences = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata else 0
    var_names = [v for v in var_names if v in posterior]
    subset = posterior[var_names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(subset)
        ess_bulk = az.ess(subset, method="bulk")
        ess_tail = az.ess(subset, method="tail")
    max_rhat = float(max(np.nanmax(rhat[v].values) for v in var_names))
    min_bulk = float(min(np.nanmin(ess_bulk[v].values) for v in var_names))
    min_tail = float(min(np.nanmin(ess_tail[v].values) for v in var_names))
    problems = []
    if divergences:
        problems.append(f"{divergences} divergent transitions: the posterior was not fully explored")
    if not (max_rhat <= RHAT_LIMIT):
        problems.append(f"R-hat {max_rhat:.3f} > {RHAT_LIMIT}: chains disagree")
    needed = ESS_PER_CHAIN * chains
    if not (min_bulk >= needed and min_tail >= needed):
        problems.append(f"effective sample size {min(min_bulk, min_tail):.0f} < {needed}: too few independent draws")
    return Diagnostics(
        engine="mcmc",
        converged=not problems,
        divergences=divergences,
        max_rhat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        draws=draws,
        chains=chains,
        target_accept=target_accept,
        attempts=attempts,
        warnings=problems,
    )


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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
    if sampler == "nutpie":
        import nutpie

        compiled = model if data is None else model.with_data(**data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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

    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
) -> tuple[Any, Diagnostics]:
    """Sample with NUTS, check convergence, and refit once if needed.

    Parameters
    ----------
    model : pymc.Model or nutpie compiled model
        A :class:`pymc.Model` for ``sampler="pymc"``; the result of
        :func:`compiled_model` for ``sampler="nutpie"``.
    var_names : list of str
        Parameters whose R-hat and ESS decide convergence.
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
        diagnostics = mcmc_diagnostics(idata, var_names, target_accept=accept, attempts=attempts)
        if diagnostics.converged or not retry or attempts >= 2:
            break
        accept = max(accept, RETRY_TARGET_ACCEPT)
    if not diagnostics.converged:
        warnings.warn("fit did not converge: " + "; ".join(diagnostics.warnings), ConvergenceWarning, stacklevel=2)
    return idata, diagnostics


def _available_cores() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
