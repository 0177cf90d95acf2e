"""The hierarchical normal model for PyMC's NUTS: the cross-check of the exact engine.

Non-centred (``theta_j = mu + tau z_j``, ``z_j ~ Normal(0, 1)``), which avoids
the funnel of the centred form when ``tau`` is near zero, and fitted on the
same standardised data as the exact engine (``(ybar − centre) / scale``,
``sigma / scale``) so that metrics around 1e6 with standard errors of 1e-6 are
as easy for the sampler as the eight schools. Every prior is invariant under
that change of units (``mu`` flat; ``tau`` flat, or its scale divided by
``scale``), so the draws, mapped back, are draws of the original model.

``import pymc`` stays inside the functions: it takes seconds.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from abpool._validation import check_choice, check_int, check_probability, check_seed
from abpool.continuous.grid import ContinuousDraws, _frame, check_arms
from abpool.continuous.priors import (
    ContinuousPrior,
    FlatPrior,
    HalfCauchyPrior,
    HalfNormalPrior,
    check_propriety,
    get_continuous_prior,
)

SAMPLERS = ("nutpie", "pymc")


def build_pymc_model(ybar: ArrayLike, sigma: ArrayLike, prior: str | ContinuousPrior = "flat") -> Any:
    """Return the hierarchical normal model as a :class:`pymc.Model`.

    The free parameters are ``mu_std``, ``tau_std`` and ``z`` in standardised
    units; the deterministics ``mu``, ``tau`` and ``theta`` are in the data's units.

    Parameters
    ----------
    ybar, sigma : array_like
        Arm means and their known standard errors.
    prior : str or prior object
        Prior on ``tau`` (``mu`` is flat).

    Returns
    -------
    pymc.Model

    Examples
    --------
    >>> model = build_pymc_model([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18])
    >>> sorted(v.name for v in model.free_RVs), sorted(v.name for v in model.deterministics)
    (['mu_std', 'tau_std', 'z'], ['mu', 'tau', 'theta'])
    """
    import pymc as pm

    y, s = check_arms(ybar, sigma)
    resolved = get_continuous_prior(prior).resolve(s)
    check_propriety(resolved, y.size)
    frame = _frame(y, s)
    with pm.Model(coords={"arm": np.arange(y.size)}) as model:
        y_std = pm.Data("ybar_std", frame.y, dims="arm")
        s_std = pm.Data("sigma_std", frame.s, dims="arm")
        mu_std = pm.Flat("mu_std")
        if isinstance(resolved, FlatPrior):
            tau_std = pm.HalfFlat("tau_std")
        elif isinstance(resolved, HalfCauchyPrior):
            tau_std = pm.HalfCauchy("tau_std", beta=resolved.scale / frame.scale)
        elif isinstance(resolved, HalfNormalPrior):
            tau_std = pm.HalfNormal("tau_std", sigma=resolved.scale / frame.scale)
        else:  # pragma: no cover - get_continuous_prior returns only the three
            raise TypeError(f"unsupported prior {resolved!r}")
        z = pm.Normal("z", 0.0, 1.0, dims="arm")
        theta_std = mu_std + tau_std * z
        pm.Normal("ybar", mu=theta_std, sigma=s_std, observed=y_std, dims="arm")
        pm.Deterministic("mu", frame.centre + frame.scale * mu_std)
        pm.Deterministic("tau", frame.scale * tau_std)
        pm.Deterministic("theta", frame.centre + frame.scale * theta_std, dims="arm")
    return model


def nuts_draws(
    ybar: ArrayLike,
    sigma: ArrayLike,
    prior: str | ContinuousPrior = "flat",
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int | None = None,
    target_accept: float = 0.95,
    sampler: str = "nutpie",
) -> ContinuousDraws:
    """Posterior draws of ``(mu, tau, theta)`` by NUTS (nutpie's by default, or PyMC's).

    Parameters
    ----------
    ybar, sigma : array_like
        Arm means and their known standard errors.
    prior : str or prior object
        Prior on ``tau`` (``mu`` is flat).
    draws, tune, chains : int
        Kept draws per chain, tuning steps per chain, and chains.
    seed : int or None
        Seed; ``None`` for a fresh one.
    target_accept : float
        NUTS target acceptance rate.
    sampler : {"nutpie", "pymc"}
        The NUTS implementation (``pm.sample(nuts_sampler=...)``).

    Returns
    -------
    ContinuousDraws
        Draws chain after chain (``chains`` records how many), with the number
        of divergent transitions. Convergence is the caller's to check (R-hat,
        ESS), e.g. with ``arviz`` on ``draws.mu.reshape(chains, -1)``.

    Examples
    --------
    >>> post = nuts_draws([28, 8, -3, 7, -1, 1, 18, 12], [15, 10, 16, 11, 9, 11, 10, 18], seed=1)  # doctest: +SKIP
    >>> post.theta.shape  # doctest: +SKIP
    (4000, 8)
    """
    import pymc as pm

    from abpool.sampling import quiet_samplers

    n_draws = check_int(draws, "draws", minimum=1)
    n_tune = check_int(tune, "tune", minimum=0)
    n_chains = check_int(chains, "chains", minimum=1)
    accept = check_probability(target_accept, "target_accept", "0.95")
    chosen = check_choice(sampler, "sampler", SAMPLERS)
    seed_value = check_seed(seed)
    y, s = check_arms(ybar, sigma)
    resolved = get_continuous_prior(prior).resolve(s)
    model = build_pymc_model(y, s, resolved)
    cores = max(1, min(n_chains, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    with model, quiet_samplers():
        idata = pm.sample(
            draws=n_draws,
            tune=n_tune,
            chains=n_chains,
            cores=cores,
            random_seed=seed_value,
            target_accept=accept,
            nuts_sampler=chosen,
            progressbar=False,
            compute_convergence_checks=False,
        )
    post = idata.posterior
    return ContinuousDraws(
        mu=np.asarray(post["mu"].values, dtype=float).reshape(-1),
        tau=np.asarray(post["tau"].values, dtype=float).reshape(-1),
        theta=np.asarray(post["theta"].values, dtype=float).reshape(-1, y.size),
        engine="nuts",
        chains=n_chains,
        divergences=int(idata.sample_stats["diverging"].sum()),
        prior=resolved.describe(),
    )
