"""Fitting the segments model: :func:`analyze_segments`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from abpool._validation import (
    check_bool,
    check_chains,
    check_choice,
    check_draws_per_chain,
    check_int,
    check_level,
    check_optional,
    check_positive,
    check_real,
    check_seed,
    check_split,
)
from abpool.data import DataSource, load_cells
from abpool.decisions import DEFAULT_THRESHOLD, choose_control
from abpool.errors import InvalidArgumentError
from abpool.result import check_on_unconverged
from abpool.segments.layout import layout_from_cells
from abpool.segments.model import MONITORED, build_segments_model, check_form, complete_draws, label_draws, model_data
from abpool.segments.priors import SegmentsPrior, get_segments_prior
from abpool.segments.result import SegmentsResult

SAMPLERS = ("nutpie", "pymc")
# The largest R-hat among q parameters of well-mixed chains exceeds 1 by about K(q) / draws per chain,
# K(q) = 8 + 3.8·log10(q / 2,000), measured on this model (4 chains; 2,002 parameters: 1.0077–1.0084 at
# 1,000 draws over three fits; 20,002 parameters: 1.0100 and 1.0137 at 1,000 draws, 1.0082 at 1,500).
# Draws are chosen to keep it near 1.0085, clear of the 1.01 limit.
_RHAT_SPREAD = (8.0, 3.8, 2_000)
_RHAT_TARGET = 0.0085
DEFAULT_DRAWS = 1_000
KERNEL_TUNE = 500
DEFAULT_TUNE = 1_000
# NUTS target acceptance. 0.95 keeps the funnel of a few segments free of divergences (0.8 diverged on the
# article's four cells). With thousands of segments the hierarchy's scales are pinned down by the segments
# themselves and the posterior is close to Gaussian, where the step size, not the geometry, sets the cost:
# 0.8 (Stan's and nutpie's default) halves the leapfrog steps. At 10,000 segments × 100 users it took 31 steps
# per draw instead of 63, with 0 divergences and max R-hat 1.0079 (1.0087 at 0.95); at 2,000 segments × 100
# and × 100,000 users, 5,000 × 1,000 and 10,000 × 10 it converged at the first attempt with 0 divergences.
# Any divergence still refits at 0.99; a missed R-hat or ESS check refits with longer tuning and more draws.
DEFAULT_TARGET_ACCEPT = 0.95
MANY_SEGMENTS_TARGET_ACCEPT = 0.8
MANY_SEGMENTS = 2_000


def default_target_accept(segments: int, *, kernel: bool = True) -> float:
    """NUTS target acceptance of a first fit: 0.95, or 0.8 from :data:`MANY_SEGMENTS` segments on the default path.

    The other forms and samplers keep 0.95 at every size.

    Examples
    --------
    >>> default_target_accept(4), default_target_accept(10_000), default_target_accept(10_000, kernel=False)
    (0.95, 0.8, 0.95)
    """
    return MANY_SEGMENTS_TARGET_ACCEPT if kernel and segments >= MANY_SEGMENTS else DEFAULT_TARGET_ACCEPT


def default_draws(parameters: int) -> int:
    """Draws per chain for a model reporting ``parameters`` scalars: 1,000, or more for very many.

    Every reported parameter must have R-hat ≤ 1.01 for the fit to count as
    converged, and among thousands of parameters the largest R-hat creeps up
    by chance alone, even when every chain mixes well: at 10,000 segments
    (20,002 parameters) and 1,000 draws per chain it came out at 1.0100 and
    1.0137 with every bulk ESS above 7,000. Its excess over 1 shrinks as one
    over the draws, so large models get enough draws to keep it near 1.0085.

    Examples
    --------
    >>> default_draws(8), default_draws(2_002), default_draws(20_002)
    (1000, 1000, 1400)
    """
    base, slope, reference = _RHAT_SPREAD
    spread = base + slope * math.log10(max(parameters, 1) / reference)
    return max(DEFAULT_DRAWS, 100 * math.ceil(spread / _RHAT_TARGET / 100))


def analyze_segments(
    data: DataSource,
    *,
    segment: str | Sequence[str],
    arm: str | None = None,
    outcome: str | None = None,
    trials: str | None = None,
    successes: str | None = None,
    control: str | None = None,
    prior: str | SegmentsPrior = "article",
    prior_scale: float | None = None,
    correlated: bool = False,
    parameterisation: str | None = None,
    sampler: str = "nutpie",
    draws: int | None = None,
    tune: int | None = None,
    chains: int = 4,
    target_accept: float | None = None,
    ci: float = 0.95,
    rope: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    split: Mapping[str, float] | Sequence[float] | None = None,
    seed: int | None = None,
    progressbar: bool = False,
    on_unconverged: str = "warn",
) -> SegmentsResult:
    """Fit the varying-intercept, varying-slope model to an experiment broken down by segment.

    Each segment gets its own control rate (intercept ``a_s``) and treatment
    effect (slope ``b_sk`` per treatment arm) on the log-odds scale; segments
    share strength through common Normal distributions, so a segment with
    little data is pulled toward the population.

    Parameters
    ----------
    data : DataFrame or path
        Unit rows or aggregated cells (aggregated in DuckDB first).
    segment : str or sequence of str
        Segment column(s); several columns are combined.
    arm, outcome, trials, successes : str, optional
        Column names (defaults are detected).
    control : str, optional
        Control arm (default: one named control, ctrl, baseline, A, 0 or false,
        else the first in sorted order; see :func:`abpool.decisions.choose_control`).
    prior : {"article", "flat", "conservative"} or SegmentsPrior
        ``article``: ``mu ~ StudentT(3, 0, 1)``, ``sigma ~ HalfNormal(1)``.
    prior_scale : float, optional
        Replace the HalfNormal scale of ``sigma_a``, ``sigma_b``.
    correlated : bool
        Draw intercepts and slopes jointly with an LKJ prior on their correlation.
    parameterisation : {"conditioned", "centred", "non-centred"}, optional
        Coordinates the sampler moves in; the posterior is the same. The
        default, ``"conditioned"``, writes each intercept and slope through its
        approximate conditional posterior and samples without divergences from
        10 to 10,000,000 users per cell; the other two are for comparison (see
        :mod:`abpool.segments.model`). The correlated model is non-centred.
    sampler : {"nutpie", "pymc"}
        NUTS implementation; nutpie compiles a model shape once and refits it
        with new data.
    draws : int, optional
        Draws kept per chain; by default 1,000, or more for a model with many
        parameters (:func:`default_draws`), so that the largest R-hat among
        them is not over 1.01 by chance alone.
    tune : int, optional
        Tuning steps per chain: by default 500 on the default path (the
        conditioned form through abpool's compiled density, whose adaptation
        settles well within them; nutpie's own default is 300), and 1,000 for
        the correlated model and the other forms and samplers (on the README's
        five countries × three platforms the correlated model converged with
        1,000 and missed R-hat, 1.013, with 500).
    chains : int
        Chains, run in parallel.
    target_accept : float, optional
        NUTS target acceptance; by default 0.95, and 0.8 on the default path
        from 2,000 segments on (:func:`default_target_accept`), where it halves
        the leapfrog steps. A fit with problems is refitted once
        (:func:`abpool.sampling.refit_settings`: at 0.99 after divergences).
    ci : float
        Credible level of every interval.
    rope : float, optional
        Half-width of the region of practical equivalence on the absolute lift.
    threshold : float
        Threshold of caring of the recommendation in each segment (see
        :func:`abpool.analyze_variants`).
    split : mapping or sequence of float, optional
        Intended share of users per arm (control first when a sequence), for the
        sample-ratio-mismatch check, overall and per segment; default equal.
    seed : int, optional
        Random seed (chosen and recorded when omitted).
    progressbar : bool
        Show the sampler's progress bar.
    on_unconverged : {"warn", "raise", "ignore"}
        What to do when the fit fails a convergence check (see
        :func:`abpool.analyze_variants`).

    Returns
    -------
    SegmentsResult

    Examples
    --------
    >>> import abpool
    >>> from abpool.datasets import make_dataframe
    >>> frame = make_dataframe(100, [30, 50, 55, 60])  # the article's data
    >>> res = abpool.analyze_segments(frame, segment="country", arm="treated", outcome="success",
    ...                               control="0", seed=3, draws=500)
    >>> res.summary()[["segment", "arm"]].values.tolist()
    [['Canada', '0'], ['Canada', '1'], ['China', '0'], ['China', '1']]
    """
    from abpool.draws import Group
    from abpool.sampling import compiled_model, inference_library, sample_nuts

    if not segment:
        raise InvalidArgumentError("segment must name a segment column (segment=...), got nothing")
    sampler = check_choice(sampler, "sampler", SAMPLERS)
    correlated = check_bool(correlated, "correlated")
    prior_obj = get_segments_prior(prior, prior_scale)
    form = check_form(parameterisation, correlated=correlated)
    ci = check_level(ci)
    rope = check_optional(rope, check_positive, "rope", hint=" (a lift half-width such as 0.01)")
    if target_accept is not None:
        target_accept = check_real(target_accept, "target_accept", low=0.5, high=1.0, high_open=True)
    draws = None if draws is None else check_draws_per_chain(draws)
    tune = None if tune is None else check_int(tune, "tune", minimum=1)
    chains = check_chains(chains)
    on_unconverged = check_on_unconverged(on_unconverged)
    seed = check_seed(seed)
    cells = load_cells(
        data, arm=arm, outcome=outcome, trials=trials, successes=successes, segment=segment, control=control
    )
    control_label, control_reason = choose_control(cells.arms, control)
    layout = layout_from_cells(cells, control_label)
    n_segments, n_treatments = layout.shape
    if draws is None:
        from abpool.segments.density import coordinate_count

        draws = default_draws(coordinate_count(n_segments, n_treatments))
    threshold = check_positive(threshold, "threshold", hint=" (an expected loss such as 0.001)")
    split = check_split(split, layout.arms)

    def build():
        return build_segments_model(layout, prior_obj, form, correlated=correlated)

    def complete(fitted: Any) -> Any:
        return label_draws(complete_draws(fitted, layout, prior_obj, form), layout)

    kernel = sampler == "nutpie" and form == "conditioned" and not correlated
    if tune is None:
        tune = KERNEL_TUNE if kernel else DEFAULT_TUNE
    if target_accept is None:
        target_accept = default_target_accept(n_segments, kernel=kernel)
    if kernel:
        # The default path: the model's log density written out (segments.density), compiled once per
        # machine; nutpie samples it with no PyMC model to build and nothing to compile in this process.
        from abpool.segments.density import KernelModel, pack

        buffer = pack(model_data(layout, form), prior_obj.nu, prior_obj.location_scale, prior_obj.scale)
        model, data = KernelModel(buffer, n_segments, n_treatments, prior_obj.scale), None
        inference = ("nutpie, abpool's compiled log density", inference_library("nutpie")[1])
    elif sampler == "nutpie":
        # Coordinates are positions, so experiments of the same shape share one compiled model.
        model = compiled_model(("segments", layout.shape, form, prior_obj, correlated), build)
        data, inference = model_data(layout, form), inference_library("nutpie")
    else:
        model, data, inference = build(), model_data(layout, form), inference_library("pymc")
    idata, diagnostics = sample_nuts(
        model,
        var_names=MONITORED + (["correlation"] if correlated else []),
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=seed,
        target_accept=target_accept,
        progressbar=progressbar,
        sampler=sampler,
        data=data,
        # The kernel's sampler keeps the parameters themselves (density.model_parameters): nothing to rebuild.
        complete=(lambda fitted: label_draws(fitted, layout)) if kernel else complete,
    )
    groups = {"posterior": idata.posterior}
    if "sample_stats" in idata:
        groups["sample_stats"] = idata.sample_stats
    n, y = layout.cell_counts()
    groups["observed_data"] = Group(
        {"trials": (("segment", "arm"), n), "successes": (("segment", "arm"), y)},
        {"segment": list(layout.segments), "arm": list(layout.arms)},
    )
    return SegmentsResult.from_draws(
        groups,
        inference=inference,
        on_unconverged=on_unconverged,
        cells=cells,
        prior=prior_obj,
        diagnostics=diagnostics,
        seed=seed,
        ci=ci,
        control=layout.control,
        control_reason=control_reason,
        rope=rope,
        threshold=threshold,
        split=split,
        correlated=correlated,
        parameterisation=form,
        sampler=sampler,
        tune=tune,
        target_accept=target_accept,
    )
