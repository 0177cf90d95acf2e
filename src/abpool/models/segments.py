"""The varying-intercept, varying-slope logistic regression for segmented experiments.

For segment ``s`` and arm ``k`` (``k = 0`` is the control)::

    y_sk ~ Binomial(n_sk, p_sk),   logit p_sk = a_s + b_sk,   b_s0 = 0
    a_s  ~ Normal(mu_a, sigma_a),  b_sk ~ Normal(mu_b_k, sigma_b_k)
    mu_a, mu_b_k ~ StudentT(3, 0, 1),   sigma_a, sigma_b_k ~ HalfNormal(1)

The likelihood is written on aggregated cells (segment × arm), so its cost
does not grow with the number of users.

Parameterisation is chosen per parameter from the data. A centred ``a_s`` is
efficient when the segment's own data pin it down more tightly than the
population spread ``sigma_a`` does; otherwise the non-centred form
``a_s = mu_a + sigma_a · z_s`` is. Measured on the article's two countries:
centred diverges with 100 users per cell (hundreds of divergences), non-centred
diverges with 10,000 or more; with a hundred segments of 1,000 users the centred
form samples twice as fast. :func:`choose_parameterisation` approximates the
model by a normal-normal hierarchy on the empirical cell logits (``mu``
integrated out exactly, ``sigma`` on a grid) and centres a parameter only when
the posterior probability that ``sigma`` is below the parameter's own noise —
the mouth of the centred funnel — is under 1%. Few segments leave ``sigma``
uncertain and keep small cells non-centred; many segments pin ``sigma`` down
and let moderately sized cells be centred.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from abpool.data import Cells
from abpool.errors import InvalidArgumentError, InvalidDataError
from abpool.priors import SegmentsPrior

SEGMENT_SEPARATOR = " / "
# A parameter is centred when the posterior probability that the population spread is
# smaller than its own noise (the region where the centred form funnels) is below this.
CENTRING_THRESHOLD = 0.01


@dataclass(frozen=True)
class SegmentLayout:
    """Cells of a segmented experiment as index arrays.

    Attributes
    ----------
    segments : tuple of str
        Segment labels (several segment columns are joined with ``" / "``).
    arms : tuple of str
        Arm labels, the control first.
    segment_index, arm_index : numpy.ndarray
        Per cell, the segment and arm (0 = control) it belongs to.
    trials, successes : numpy.ndarray
        Per cell counts.
    """

    segments: tuple[str, ...]
    arms: tuple[str, ...]
    segment_index: NDArray[np.int64]
    arm_index: NDArray[np.int64]
    trials: NDArray[np.int64]
    successes: NDArray[np.int64]

    @property
    def control(self) -> str:
        return self.arms[0]

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.arms[1:]

    @property
    def shape(self) -> tuple[int, int]:
        """``(segments, treatment arms)``."""
        return len(self.segments), len(self.arms) - 1

    def cell_counts(self) -> tuple[NDArray, NDArray]:
        """Trials and successes as ``(segments, arms)`` matrices; missing cells are 0 trials."""
        n = np.zeros((len(self.segments), len(self.arms)), dtype=np.int64)
        y = np.zeros_like(n)
        n[self.segment_index, self.arm_index] = self.trials
        y[self.segment_index, self.arm_index] = self.successes
        return n, y

    def signature(self) -> tuple[Any, ...]:
        """What fixes the compiled model's structure (not the counts)."""
        return (len(self.segments), len(self.arms), self.segment_index.tobytes(), self.arm_index.tobytes())


def layout_from_cells(cells: Cells, control: str | None = None) -> SegmentLayout:
    """Index the cells by segment and arm, the control arm first.

    Examples
    --------
    >>> from abpool.data import load_cells
    >>> from abpool.datasets import make_dataframe
    >>> cells = load_cells(make_dataframe(100, [30, 50, 55, 60]), segment="country", arm="treated")
    >>> layout = layout_from_cells(cells, control="0")
    >>> layout.segments, layout.arms, layout.trials.tolist()
    (('Canada', 'China'), ('0', '1'), [100, 100, 100, 100])
    """
    if not cells.segment_columns:
        raise InvalidArgumentError("the segments model needs at least one segment column (--segment COL)")
    table = cells.table
    arms = list(cells.arms)
    control_label = str(control) if control is not None else arms[0]
    if control_label not in arms:
        listed = ", ".join(repr(a) for a in arms[:20])
        raise InvalidDataError(
            f"control arm {control_label!r} is not in column {cells.arm_column!r}; arms are: {listed}"
        )
    arms.remove(control_label)
    arms.insert(0, control_label)
    labels = table[list(cells.segment_columns)].astype(str).agg(SEGMENT_SEPARATOR.join, axis=1)
    segments = tuple(dict.fromkeys(labels))
    seg_pos = {s: i for i, s in enumerate(segments)}
    arm_pos = {a: i for i, a in enumerate(arms)}
    return SegmentLayout(
        segments=segments,
        arms=tuple(arms),
        segment_index=labels.map(seg_pos).to_numpy(dtype=np.int64),
        arm_index=table["arm"].map(arm_pos).to_numpy(dtype=np.int64),
        trials=table["trials"].to_numpy(dtype=np.int64),
        successes=table["successes"].to_numpy(dtype=np.int64),
    )


# --------------------------------------------------------------------------- parameterisation
@dataclass(frozen=True)
class Parameterisation:
    """Which parameters are centred (True) or non-centred (False).

    ``intercept`` has shape ``(segments,)``, ``slope`` ``(segments, treatments)``;
    ``intercept_shrinkage`` and ``slope_shrinkage`` are the expected shrinkage
    factors the choice was made from.
    """

    intercept: NDArray[np.bool_]
    slope: NDArray[np.bool_]
    intercept_shrinkage: NDArray[np.float64]
    slope_shrinkage: NDArray[np.float64]

    def describe(self, layout: SegmentLayout) -> dict[str, Any]:
        """JSON-ready: per segment, the form of its intercept and of each slope."""

        def form(flag: bool) -> str:
            return "centred" if flag else "non-centred"

        return {
            seg: {
                "intercept": form(bool(self.intercept[i])),
                **{f"slope[{arm}]": form(bool(self.slope[i, k])) for k, arm in enumerate(layout.treatments)},
            }
            for i, seg in enumerate(layout.segments)
        }

    def key(self) -> tuple[bytes, bytes]:
        return self.intercept.tobytes(), self.slope.tobytes()


def logit_estimates(layout: SegmentLayout) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Empirical logits of intercepts and slopes with their approximate variances.

    Uses the half-corrected logit (adds 0.5 to successes and failures), so empty
    and full cells stay finite. Missing cells get an infinite variance.

    Returns
    -------
    a_hat, a_var : arrays of shape (segments,)
    b_hat, b_var : arrays of shape (segments, treatments)
    """
    n, y = layout.cell_counts()
    present = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logit = np.log(y + 0.5) - np.log(n - y + 0.5)
        var = 1.0 / (y + 0.5) + 1.0 / (n - y + 0.5)
    var = np.where(present, var, np.inf)
    logit = np.where(present, logit, 0.0)
    a_hat, a_var = logit[:, 0], var[:, 0]
    b_hat = logit[:, 1:] - logit[:, [0]]
    b_var = var[:, 1:] + var[:, [0]]
    return a_hat, a_var, b_hat, b_var


def shrinkage_profile(estimates: NDArray, variances: NDArray, scale: float) -> tuple[NDArray, NDArray]:
    """Each estimate's expected shrinkage and the probability that the population spread is below its noise.

    Uses the normal-normal approximation ``estimate_s ~ Normal(mu, sigma² + v_s)``
    with a flat prior on ``mu`` (integrated exactly) and ``sigma ~ HalfNormal(scale)``
    (BDA3 §5.4), tabulated on a grid of ``sigma``.

    Returns
    -------
    shrinkage : numpy.ndarray
        Posterior mean of ``v_s / (v_s + sigma²)`` (1 for missing estimates).
    weak : numpy.ndarray
        ``P(sigma² < v_s)``: how much posterior mass lies where the group's own
        data say less than the population does — the funnel a centred
        parameter falls into (1 for missing estimates).

    Examples
    --------
    >>> import numpy as np
    >>> shrink, weak = shrinkage_profile(np.array([-1.0, 1.0]), np.array([1e-4, 1.0]), 1.0)
    >>> bool(shrink[0] < 0.01 < 0.3 < shrink[1]), bool(weak[0] < 0.01 < weak[1])
    (True, True)
    """
    finite = np.isfinite(variances)
    x, v = estimates[finite], variances[finite]
    grid = np.linspace(0.0, 6.0 * scale, 2401)[1:]
    logp = -0.5 * (grid / scale) ** 2
    if x.size:
        total = v[None, :] + grid[:, None] ** 2
        precision = 1.0 / total
        mu_hat = (precision * x).sum(axis=1) / precision.sum(axis=1)
        logp = (
            logp
            - 0.5 * np.log(precision.sum(axis=1))
            - 0.5 * np.log(total).sum(axis=1)
            - 0.5 * (precision * (x[None, :] - mu_hat[:, None]) ** 2).sum(axis=1)
        )
    weights = np.exp(logp - logsumexp(logp))
    shrinkage = np.ones(estimates.shape)
    weak = np.ones(estimates.shape)
    shrinkage[finite] = weights @ (v[None, :] / (v[None, :] + grid[:, None] ** 2))
    weak[finite] = weights @ (grid[:, None] ** 2 < v[None, :]).astype(float)
    return shrinkage, weak


def choose_parameterisation(
    layout: SegmentLayout, prior: SegmentsPrior, *, force: str | None = None
) -> Parameterisation:
    """Centre each intercept and slope whose data dominate; leave the others non-centred.

    Parameters
    ----------
    layout : SegmentLayout
    prior : SegmentsPrior
    force : {"centred", "non-centred"}, optional
        Use one form everywhere instead (for comparisons and benchmarks).
    """
    a_hat, a_var, b_hat, b_var = logit_estimates(layout)
    shrink_a, weak_a = shrinkage_profile(a_hat, a_var, prior.scale)
    profiles = [shrinkage_profile(b_hat[:, k], b_var[:, k], prior.scale) for k in range(b_hat.shape[1])]
    shrink_b = np.column_stack([shrink for shrink, _ in profiles])
    weak_b = np.column_stack([weak for _, weak in profiles])
    intercept = weak_a < CENTRING_THRESHOLD
    slope = weak_b < CENTRING_THRESHOLD
    if force is not None:
        if force not in ("centred", "non-centred"):
            raise InvalidArgumentError(f"parameterisation must be 'centred' or 'non-centred', got {force!r}")
        value = force == "centred"
        intercept = np.full_like(intercept, value)
        slope = np.full_like(slope, value)
    return Parameterisation(intercept=intercept, slope=slope, intercept_shrinkage=shrink_a, slope_shrinkage=shrink_b)


# --------------------------------------------------------------------------- PyMC model
def _mixed_normal(name: str, mu: Any, sigma: Any, centred: NDArray[np.bool_], dims: Any) -> Any:
    """Normal(mu, sigma) with each element centred or non-centred as ``centred`` says."""
    import pymc as pm
    import pytensor.tensor as pt

    flat_centred = centred.ravel()
    size = flat_centred.size
    mu_flat = pt.broadcast_to(mu, centred.shape).ravel()
    sigma_flat = pt.broadcast_to(sigma, centred.shape).ravel()
    idx_c = np.flatnonzero(flat_centred)
    idx_n = np.flatnonzero(~flat_centred)
    values = pt.zeros(size)
    if idx_c.size:
        direct = pm.Normal(f"{name}_centred", mu=mu_flat[idx_c], sigma=sigma_flat[idx_c], shape=idx_c.size)
        values = pt.set_subtensor(values[idx_c], direct)
    if idx_n.size:
        offset = pm.Normal(f"{name}_offset", mu=0.0, sigma=1.0, shape=idx_n.size)
        values = pt.set_subtensor(values[idx_n], mu_flat[idx_n] + sigma_flat[idx_n] * offset)
    return pm.Deterministic(name, values.reshape(centred.shape), dims=dims)


def build_segments_model(
    layout: SegmentLayout, prior: SegmentsPrior, parameterisation: Parameterisation, *, correlated: bool = False
) -> Any:
    """Return the segments model as a :class:`pymc.Model`; counts enter through ``pm.Data``.

    With ``correlated=True`` each segment's intercept and slopes are drawn
    jointly, with an LKJ prior on their correlation (always non-centred).
    """
    import pymc as pm
    import pytensor.tensor as pt

    n_segments, n_treatments = layout.shape
    coords = {
        "segment": list(layout.segments),
        "treatment": list(layout.treatments),
        "cell": np.arange(layout.trials.size),
    }
    with pm.Model(coords=coords) as model:
        successes = pm.Data("successes", layout.successes, dims="cell")
        trials = pm.Data("trials", layout.trials, dims="cell")
        mu_a = pm.StudentT("mu_a", nu=prior.nu, mu=0.0, sigma=prior.location_scale)
        mu_b = pm.StudentT("mu_b", nu=prior.nu, mu=0.0, sigma=prior.location_scale, dims="treatment")
        if correlated:
            coords_effect = ["intercept", *[f"slope[{t}]" for t in layout.treatments]]
            model.add_coord("effect", coords_effect)
            model.add_coord("effect_bis", coords_effect)
            chol, corr, stds = pm.LKJCholeskyCov(
                "chol",
                n=n_treatments + 1,
                eta=prior.lkj_eta,
                sd_dist=pm.HalfNormal.dist(sigma=prior.scale, shape=n_treatments + 1),
                compute_corr=True,
            )
            pm.Deterministic("correlation", corr, dims=("effect", "effect_bis"))
            pm.Deterministic("sigma_a", stds[0])
            pm.Deterministic("sigma_b", stds[1:], dims="treatment")
            offsets = pm.Normal("offset", 0.0, 1.0, dims=("segment", "effect"))
            effects = pt.dot(offsets, chol.T)
            a = pm.Deterministic("a", mu_a + effects[:, 0], dims="segment")
            b = pm.Deterministic("b", mu_b[None, :] + effects[:, 1:], dims=("segment", "treatment"))
        else:
            sigma_a = pm.HalfNormal("sigma_a", sigma=prior.scale)
            sigma_b = pm.HalfNormal("sigma_b", sigma=prior.scale, dims="treatment")
            a = _mixed_normal("a", mu_a, sigma_a, parameterisation.intercept, dims="segment")
            b = _mixed_normal(
                "b", mu_b[None, :], sigma_b[None, :], parameterisation.slope, dims=("segment", "treatment")
            )
        slopes = pt.concatenate([pt.zeros((n_segments, 1)), b], axis=1)
        logit_p = a[layout.segment_index] + slopes[layout.segment_index, layout.arm_index]
        pm.Binomial("y", n=trials, logit_p=logit_p, observed=successes, dims="cell")
    return model


MONITORED = ["mu_a", "sigma_a", "mu_b", "sigma_b", "a", "b"]
