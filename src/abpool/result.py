"""The result contract shared by every model: one vocabulary, one JSON schema, one registry.

Every model's result is a :class:`Result`. A model supplies its posterior
draws of the arm rates — an array ``(draws, segments, arms)``, a single
unnamed segment for a plain A/B/n test — plus how strongly each estimate was
pooled, its population-level answers and a few sentences of its own. Every
answer a reader asks for (rates and intervals at ``ci``, absolute and relative
lifts, P(beats control), P(best), expected loss, ROPE, pairwise
probabilities, the classical comparison, decision sentences, the JSON
document) is computed here once, from those draws, for every model.

The columns of :meth:`Result.summary` are :data:`VOCABULARY`; the rows of
:meth:`Result.population` have the columns :data:`POPULATION_COLUMNS`. Point
estimates shown to people are posterior **medians**: they exist for every
quantity (the mean of the variants model's ``a + b`` can be infinite), agree
with the equal-tailed intervals printed beside them, and do not change under
a change of scale (the median of ``invlogit(mu)`` is ``invlogit`` of the
median of ``mu``).

The draws themselves live in :attr:`Result.tree`, an :class:`xarray.DataTree`
laid out as ArviZ's InferenceData (groups ``posterior``, ``observed_data``,
``sample_stats``) with ArviZ's provenance attributes (``created_at``,
``creation_library``, ``inference_library`` …) and abpool's (model, prior,
seed, data fingerprint, settings). :attr:`Result.idata` is the same draws as
an :class:`arviz.InferenceData`.

This module imports nothing downstream of it: models register here
(:func:`register_model`), and ``store``, ``report``, ``plots`` and ``cli``
find them here.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from abpool import _format as fmt
from abpool import decisions
from abpool._validation import check_choice
from abpool._version import __version__
from abpool.data import Cells
from abpool.diagnostics import Diagnostics
from abpool.draws import TreeField, draw_tree
from abpool.errors import ConvergenceError, ConvergenceWarning, InvalidArgumentError, InvalidDataError
from abpool.io import column_records, to_jsonable
from abpool.metric import BINARY, Metric
from abpool.panel import PanelEntry

SCHEMA_VERSION = 1

VOCABULARY: dict[str, str] = {
    "segment": "segment label (segments model only; several segment columns joined with ' / ')",
    "arm": "arm label",
    "is_control": "whether this arm is the control",
    "trials": "trials (users) in the cell",
    "successes": "successes (conversions) in the cell",
    "observed_rate": "successes / trials (empty when the cell has no trials)",
    "rate": "posterior median of the arm's rate: the point estimate shown everywhere",
    "rate_mean": "posterior mean of the arm's rate",
    "rate_sd": "posterior standard deviation of the arm's rate",
    "rate_ci_low": "equal-tailed credible interval of the rate at level ci, lower end",
    "rate_ci_high": "equal-tailed credible interval of the rate at level ci, upper end",
    "rate_hdi_low": "highest-density interval of the rate at level ci, lower end",
    "rate_hdi_high": "highest-density interval of the rate at level ci, upper end",
    "pooling": (
        "how far the estimate is pulled toward the population: 0 = its own data decide, 1 = the population "
        "decides (variants: E[(a+b)/(a+b+n)]; segments: the same weight for the segment's control log-odds "
        "on control rows and for its treatment effect on treatment rows)"
    ),
    "lift": "absolute lift: posterior median of rate - control rate (rate scale; shown in percentage points)",
    "lift_ci_low": "credible interval of the absolute lift, lower end",
    "lift_ci_high": "credible interval of the absolute lift, upper end",
    "relative_lift": "relative lift: posterior median of rate / control rate - 1",
    "relative_lift_ci_low": "credible interval of the relative lift, lower end",
    "relative_lift_ci_high": "credible interval of the relative lift, upper end",
    "prob_beats_control": "P(rate > control rate); empty on the control's own row",
    "prob_best": "P(this arm has the highest rate), among the arms of the experiment (or of the segment)",
    "expected_loss": (
        "expected loss against the best arm: E[max rate - this rate], the rate given up on average by "
        "choosing this arm when another may be better (among the arms of the experiment or segment)"
    ),
    "prob_in_rope": "P(|absolute lift| < rope): the effect is practically nil (present when a rope is given)",
}

POPULATION_COLUMNS: dict[str, str] = {
    "quantity": "name of the population-level quantity",
    "arm": "treatment arm it belongs to (empty when it belongs to none)",
    "description": "what the quantity is, in words",
    "median": "posterior median",
    "ci_low": "equal-tailed credible interval at level ci, lower end",
    "ci_high": "equal-tailed credible interval at level ci, upper end",
    "prob_positive": "P(quantity > 0), for effects (empty otherwise)",
}

# Pairwise probabilities grow as arms²: beyond this many arms in one segment they are left
# out of JSON and tables (prob_greater(i, j) still answers any pair).
MAX_PAIRWISE_ARMS = 50
ON_UNCONVERGED = ("warn", "raise", "ignore")
CHOSEN = "chosen with --control"
# What every model's fit takes to find its data: the source and its column names.
DATA_PARAMETERS = frozenset({"data", "arm", "outcome", "trials", "successes", "segment", "control"})


def now() -> str:
    """The current time, UTC, to the second (ISO 8601)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, result type and fitting function.

    Attributes
    ----------
    name : str
        Short name, the ``model`` key of saved results (``"variants"``).
    result_type : type
        Its :class:`Result` subclass; ``result_type.from_saved`` rebuilds a saved result.
    fit : callable
        The public function that fits it from data (``fit(data, **options)``).
    """

    name: str
    result_type: type[Result]
    fit: Callable[..., Result]

    @property
    def options(self) -> frozenset[str]:
        """Keyword options ``fit`` accepts beyond the data and its column names."""
        import inspect

        return frozenset(inspect.signature(self.fit).parameters) - DATA_PARAMETERS


_MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> None:
    """Make a model known to ``load``, ``report``, ``analyze`` and the command line."""
    _MODELS[entry.name] = entry


def model_entry(name: str) -> ModelEntry:
    """The registered model called ``name``."""
    if name not in _MODELS:
        raise InvalidArgumentError(f"model must be one of {', '.join(sorted(_MODELS))}, got {name!r}")
    return _MODELS[name]


def registered_models() -> tuple[str, ...]:
    """Names of the registered models."""
    return tuple(sorted(_MODELS))


@dataclass(frozen=True)
class FigureSpec:
    """A figure a model's report shows: how to draw it and what to say about it."""

    title: str
    alt: str
    caption: str
    draw: Callable[[], Any]


def check_on_unconverged(value: str) -> str:
    """Validate ``on_unconverged``: ``"warn"`` (default), ``"raise"`` or ``"ignore"``."""
    return check_choice(value, "on_unconverged", ON_UNCONVERGED)


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside abpool."""
    import sys

    level = 1
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "abpool":
        frame = frame.f_back
        level += 1
    return level


# --------------------------------------------------------------------------- the contract
@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Result(ABC):
    """What every model's result is and answers.

    Attributes
    ----------
    cells : Cells
        The data as analysed.
    prior : object
        The prior used (a model's prior class).
    tree : xarray.DataTree
        The draws, laid out as ArviZ InferenceData, with provenance attributes.
    diagnostics : Diagnostics
        Convergence diagnostics.
    seed : int
        Random seed; passing it again reproduces the result exactly.
    ci : float
        Credible level of every interval.
    control : str
        The control arm: lifts and P(beats control) are against it.
    control_reason : str
        Why it is the control (chosen, conventionally named, or first in sorted order).
    rope : float or None
        Half-width of the region of practical equivalence on the absolute lift.
    threshold : float
        The threshold of caring of the recommendation: the expected loss below which an arm is
        shipped (absolute rate; default 0.001, 0.1 percentage points).
    split : tuple of float or None
        The intended share of users of each arm, in the order of :attr:`arms` (None: equal).
    calibration : dict or None
        This design's own A/A calibration, when it was run (:meth:`calibrate`).
    prior_sensitivity : dict or None
        The answers under a panel of reasonable priors, when they were computed
        (:meth:`with_sensitivity`; see :mod:`abpool.sensitivity`).
    created : str
        When the fit was made (UTC, ISO 8601).
    """

    model: ClassVar[str]
    description: ClassVar[str]
    arm_noun: ClassVar[str] = "arm"
    # Public names of summary columns where this model's quantity is not a rate ({"rate": "mean", ...}).
    column_names: ClassVar[dict[str, str]] = {}
    # How the no-pooling reference of a sensitivity check estimates each cell on its own.
    no_pooling: ClassVar[str] = "Beta(1 + successes, 1 + failures)"

    cells: Cells
    prior: Any
    # A descriptor, not a default (the field stays required): the draws become a DataTree when first read.
    tree: Any = TreeField()  # noqa: RUF009
    diagnostics: Diagnostics
    seed: int
    control: str
    control_reason: str = CHOSEN
    ci: float = 0.95
    rope: float | None = None
    threshold: float = decisions.DEFAULT_THRESHOLD
    split: tuple[float, ...] | None = None
    calibration: dict[str, Any] | None = None
    prior_sensitivity: dict[str, Any] | None = None
    created: str = field(default_factory=now)

    # ------------------------------------------------------------- what a model supplies
    @property
    @abstractmethod
    def arms(self) -> tuple[str, ...]:
        """Arm labels, in the order of the draws' last axis."""

    @property
    def segments(self) -> tuple[str, ...]:
        """Segment labels; empty for a test without segments."""
        return ()

    @abstractmethod
    def _compute_rate_draws(self) -> NDArray[np.float64]:
        """Rate draws, shape ``(draws, max(1, segments), arms)``."""

    def _cell_counts(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Trials and successes, each ``(max(1, segments), arms)``; a missing cell has 0 trials.

        Binary models supply it; a model of another metric supplies
        :meth:`_cell_sizes`, :meth:`_observed_columns` and :meth:`grand_value` instead.
        """
        raise InvalidArgumentError(f"the {self.model} model's data are not counts of successes; see summary()")

    def _cell_sizes(self) -> NDArray[np.int64]:
        """Users of every cell, ``(max(1, segments), arms)``: the sample-ratio test and small-sample cautions."""
        return self._cell_counts()[0]

    def _observed_columns(self) -> dict[str, NDArray]:
        """The summary's leading columns, what each cell observed, each ``(max(1, segments), arms)``.

        The first is the cell's users (``trials``), integer columns are
        written as integers, and ``observed_rate`` is the cell's own estimate
        (its rate; its mean for a model of means, renamed by :attr:`column_names`).
        """
        n, y = self._cell_counts()
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = np.where(n > 0, y / np.maximum(n, 1), np.nan)
        return {"trials": n, "successes": y, "observed_rate": observed}

    @abstractmethod
    def _pooling(self) -> NDArray[np.float64]:
        """Pooling weight (see :data:`VOCABULARY`) of every cell, ``(max(1, segments), arms)``."""

    @abstractmethod
    def _population_rows(self) -> list[dict[str, Any]]:
        """Population quantities: dicts with ``quantity``, ``arm``, ``description``, ``draws``, ``effect``."""

    @abstractmethod
    def question(self) -> str:
        """The question this analysis answers, in one or two sentences."""

    @abstractmethod
    def method_statement(self) -> str:
        """How the model answers it (the pooling), in a few sentences."""

    @abstractmethod
    def prior_facts(self) -> list[tuple[str, str]]:
        """The prior and model settings as label–value pairs."""

    @abstractmethod
    def prior_statement(self) -> str:
        """Why this prior, and how to argue with it."""

    @abstractmethod
    def model_settings(self) -> dict[str, Any]:
        """Settings beyond ci, control, rope and seed, JSON-ready (they reproduce the fit)."""

    @abstractmethod
    def figure_specs(self) -> list[FigureSpec]:
        """The figures of this model's report."""

    @abstractmethod
    def convergence_dataset(self, max_rates: int = 6) -> Any:
        """The quantities whose chains a convergence plot shows (an xarray Dataset), or None without chains."""

    @classmethod
    @abstractmethod
    def from_saved(cls, payload: dict[str, Any], tree: Any) -> Result:
        """Rebuild a result from its ``to_dict()`` payload and its saved draws."""

    def population_sentences(self) -> list[str]:
        """Sentences about the population level (none by default)."""
        return []

    @classmethod
    def prior_panel(cls) -> list[PanelEntry]:
        """The model's panel of reasonable priors for a prior-sensitivity check (see :mod:`abpool.sensitivity`)."""
        raise InvalidArgumentError(f"the {cls.model} model has no panel of priors for a sensitivity check")

    @classmethod
    def panel_entry(cls, item: Any) -> PanelEntry:
        """One panel entry from the user: a prior object, a panel name, or a spec ``NAME:key=value,...``."""
        raise InvalidArgumentError(f"the {cls.model} model has no panel of priors for a sensitivity check")

    def no_pooling_draws(self, size: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Draws of every cell estimated on its own (:attr:`no_pooling`), ``(size, max(1, segments), arms)``."""
        trials, successes = self._cell_counts()
        return rng.beta(1.0 + successes, 1.0 + (trials - successes), size=(size, *trials.shape))

    @classmethod
    def from_draws(
        cls, groups: dict[str, Any], *, inference: tuple[str, str], on_unconverged: str, **fields: Any
    ) -> Result:
        """Assemble a fitted result: its draws (``groups`` of xarray Datasets) with provenance, then its verdict.

        ``inference`` names the library (and version) that drew the samples;
        ``fields`` are the result's own. An unconverged fit is then handled as
        ``on_unconverged`` says (see :meth:`handle_convergence`). Groups given
        as :class:`abpool.draws.Group` stay numpy arrays until :attr:`tree` is read.
        """
        tree = draw_tree(groups)
        result = cls(tree=tree, **fields)
        tree.attrs = provenance_attrs(
            model=result.model,
            prior=result.prior,
            seed=result.seed,
            cells=result.cells,
            settings=result.settings(),
            created=result.created,
            inference=inference,
        )
        result.handle_convergence(on_unconverged)
        return result

    # ------------------------------------------------------------------------ basics
    @property
    def _draws(self) -> Any:
        """The draws without building a DataTree: the same ``["posterior"][name].values`` and ``attrs`` lookups."""
        return Result.__dict__["tree"].held(self)

    @property
    def segmented(self) -> bool:
        """Whether the experiment is broken down by segment."""
        return bool(self.segments)

    @property
    def control_index(self) -> int:
        """Position of the control in :attr:`arms`."""
        return self.arms.index(self.control)

    @property
    def treatments(self) -> tuple[str, ...]:
        """Every arm but the control."""
        return tuple(arm for arm in self.arms if arm != self.control)

    @cached_property
    def _rates(self) -> NDArray[np.float64]:
        return self._compute_rate_draws()

    def arm_index(self, arm: str | int) -> int:
        """Position of ``arm`` (a label, or a position) in :attr:`arms`."""
        if isinstance(arm, int | np.integer) and not isinstance(arm, bool):
            if 0 <= int(arm) < len(self.arms):
                return int(arm)
        elif str(arm) in self.arms:
            return self.arms.index(str(arm))
        listed = fmt.names_list(list(self.arms), 20)
        raise InvalidArgumentError(f"arm must be one of {listed}, got {arm!r}")

    def segment_index(self, segment: str | int | None) -> int:
        """Position of ``segment`` in :attr:`segments` (0 for a test without segments)."""
        if not self.segmented:
            if segment is not None:
                raise InvalidArgumentError(f"segment must be None: this {self.model} result has no segments")
            return 0
        if segment is None:
            raise InvalidArgumentError(f"segment must be one of {fmt.names_list(list(self.segments), 20)}, got None")
        if isinstance(segment, int | np.integer) and not isinstance(segment, bool):
            if 0 <= int(segment) < len(self.segments):
                return int(segment)
        elif str(segment) in self.segments:
            return self.segments.index(str(segment))
        raise InvalidArgumentError(f"segment must be one of {fmt.names_list(list(self.segments), 20)}, got {segment!r}")

    def rate_draws(self, segment: str | int | None = None) -> NDArray[np.float64]:
        """Posterior draws of every arm's rate in ``segment``, shape ``(draws, arms)``."""
        return self._rates[:, self.segment_index(segment), :]

    def counts(self, segment: str | int | None = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Trials and successes of every arm (in ``segment``); a missing cell has 0 trials."""
        n, y = self._cell_counts()
        s = self.segment_index(segment)
        return n[s], y[s]

    @property
    def metric(self) -> Metric:
        """What the arms' estimates measure (a rate here) and how they are written; see :mod:`abpool.metric`."""
        return BINARY

    def grand_value(self, segment: str | int | None = None) -> float:
        """The pooled observed value the estimates are pulled toward: the grand rate, or the grand mean."""
        return self.grand_rate(segment)

    def grand_rate(self, segment: str | int | None = None) -> float:
        """The pooled observed rate: all successes over all trials (of ``segment``, or of everything)."""
        n, y = self._cell_counts()
        if segment is not None or not self.segmented:
            s = self.segment_index(segment)
            n, y = n[s], y[s]
        return float(y.sum() / n.sum())

    # ------------------------------------------------------------------------ answers
    def prob_greater(self, i: str | int, j: str | int, segment: str | int | None = None) -> float:
        """Posterior probability that arm ``i``'s rate exceeds arm ``j``'s (in ``segment``)."""
        return decisions.prob_greater(self.rate_draws(segment), self.arm_index(i), self.arm_index(j))

    def prob_greater_matrix(self, segment: str | int | None = None) -> pd.DataFrame:
        """All ``P(row > column)`` (in ``segment``) as a DataFrame indexed by arm."""
        matrix = decisions.prob_greater_matrix(self.rate_draws(segment))
        return pd.DataFrame(matrix, index=list(self.arms), columns=list(self.arms))

    def prob_beats_control(self, arm: str | int | None = None, segment: str | int | None = None) -> float:
        """P(``arm`` beats the control) (in ``segment``); ``arm`` may be left out when there is one treatment."""
        if arm is None:
            if len(self.treatments) != 1:
                raise InvalidArgumentError(f"arm must be one of {', '.join(self.treatments)}, got None")
            arm = self.treatments[0]
        return self.prob_greater(arm, self.control, segment)

    def _by_cell(self, column: str) -> pd.Series:
        summary = self._summary
        keys = ["segment", "arm"] if self.segmented else ["arm"]
        return summary.set_index(keys)[column].rename(column)

    def prob_best(self) -> pd.Series:
        """P(each arm is best), indexed by arm (by segment and arm for segmented results)."""
        return self._by_cell("prob_best")

    def expected_loss(self) -> pd.Series:
        """Expected loss against the best arm (see :data:`VOCABULARY`), indexed like :meth:`prob_best`."""
        return self._by_cell("expected_loss")

    @cached_property
    def _summary_columns(self) -> dict[str, Any]:
        """The summary's columns under the contract's names: the frame, the JSON and a batch's rows come from them."""
        draws = self._rates
        _, n_segments, n_arms = draws.shape
        tail = (1.0 - self.ci) / 2.0
        probs = [tail, 0.5, 1.0 - tail]
        found = decisions.rate_answers(draws, self.control_index, probs, self.ci, rope=self.rope)
        quantiles, lift_q, rel_q = found["rate"], found["lift"], found["relative_lift"]
        observed = self._observed_columns()
        columns: dict[str, Any] = {
            **observed,
            "rate": quantiles[1],
            "rate_mean": found["mean"],
            "rate_sd": found["sd"],
            "rate_ci_low": quantiles[0],
            "rate_ci_high": quantiles[2],
            "rate_hdi_low": found["hdi_low"],
            "rate_hdi_high": found["hdi_high"],
            "pooling": self._pooling(),
            "lift": lift_q[1],
            "lift_ci_low": lift_q[0],
            "lift_ci_high": lift_q[2],
            "relative_lift": rel_q[1],
            "relative_lift_ci_low": rel_q[0],
            "relative_lift_ci_high": rel_q[2],
            "prob_beats_control": found["prob_beats_control"],
            "prob_best": found["prob_best"],
            "expected_loss": found["expected_loss"],
        }
        if self.rope is not None:
            columns["prob_in_rope"] = found["prob_in_rope"]
        is_control = np.tile(np.arange(n_arms) == self.control_index, n_segments)
        # Copies: the control's comparisons are blanked in place below.
        values = {name: np.array(value, dtype=float).ravel() for name, value in columns.items()}
        for name, value in values.items():
            # A comparison with the control means nothing on the control's own row.
            if name.startswith(("lift", "relative_lift", "prob_beats", "prob_in_rope")):
                value[is_control] = np.nan
        keys: dict[str, Any] = {}
        if self.segmented:
            keys["segment"] = np.repeat(np.array(self.segments, dtype=object), n_arms)
        keys["arm"] = np.tile(np.array(self.arms, dtype=object), n_segments)
        keys["is_control"] = is_control
        counts = {
            name: values.pop(name).astype(np.int64)
            for name, value in observed.items()
            if np.issubdtype(np.asarray(value).dtype, np.integer)
        }
        return keys | counts | values

    @cached_property
    def _summary(self) -> pd.DataFrame:
        # Built in one go from columns: inserting and assigning into a frame costs more than the answers.
        return pd.DataFrame(self._summary_columns)

    def summary_records(self) -> list[dict[str, Any]]:
        """:meth:`summary` as records, one dict per row, built without a DataFrame.

        The JSON and a batch's results table read the answers this way: a
        frame of a few rows costs more to build and walk than the answers.
        """
        columns = self._summary_columns
        if self.column_names:
            columns = {self.column_names.get(name, name): values for name, values in columns.items()}
        return column_records(columns)

    def summary(self) -> pd.DataFrame:
        """One row per arm (per segment and arm when segmented); columns from :data:`VOCABULARY`.

        A model of means names its columns for what they hold (``mean``,
        ``observed_mean``, ``n``…; see :attr:`column_names`).
        """
        return self._summary.rename(columns=self.column_names) if self.column_names else self._summary.copy()

    def estimates(self) -> pd.DataFrame:
        """:meth:`summary` under the contract's own column names (``rate``, ``observed_rate``, ``trials``…).

        The same for every model, whatever it calls the columns in its public
        summary: for code that treats every model alike (tables, figures).
        """
        return self._summary.copy()

    @cached_property
    def _population_records(self) -> list[dict[str, Any]]:
        rows = []
        for row in self._population_rows():
            values = np.asarray(row["draws"], dtype=float).ravel()
            low, mid, high = np.quantile(values, [(1.0 - self.ci) / 2.0, 0.5, (1.0 + self.ci) / 2.0])
            rows.append(
                {
                    "quantity": row["quantity"],
                    "arm": row.get("arm"),
                    "description": row["description"],
                    "median": float(mid),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "prob_positive": float(np.mean(values > 0)) if row.get("effect") else np.nan,
                }
            )
        return rows

    @cached_property
    def _population(self) -> pd.DataFrame:
        return _keep_none(pd.DataFrame(self._population_records, columns=list(POPULATION_COLUMNS)), "arm")

    def population(self) -> pd.DataFrame:
        """Population-level answers, one row per quantity; columns from :data:`POPULATION_COLUMNS`."""
        return self._population.copy()

    def classical_skipped(self) -> str | None:
        """Why the classical comparison is left out (too many pairs to test), or None when it is not."""
        if self.segmented or len(self.arms) <= MAX_PAIRWISE_ARMS:
            return None
        pairs = len(self.arms) * (len(self.arms) - 1) // 2
        return (
            f"the classical comparison tests every pair: {pairs:,} pairs for {len(self.arms):,} arms, beyond the "
            f"{MAX_PAIRWISE_ARMS}-arm limit; compare chosen arms with prob_greater(i, j)"
        )

    def classical(self) -> pd.DataFrame:
        """The classical comparison beside the posterior: each comparison's tests and ``P(arm_i > arm_j)``.

        Without segments every pair of arms is tested (up to ``MAX_PAIRWISE_ARMS``
        arms: the pairs grow as arms²); with segments, every treatment against
        the control within each segment. Columns are those of
        :func:`abpool.classical.classical_comparisons` plus ``prob_greater``.
        """
        skipped = self.classical_skipped()
        if skipped is not None:
            raise InvalidArgumentError(skipped)

        columns = [*self._classical_columns(), "prob_greater"]
        return pd.DataFrame.from_records(self._classical_answers(), columns=columns)

    def _classical_answers(self) -> list[dict[str, Any]]:
        """The classical tests as records, each with its ``prob_greater``: :meth:`classical`'s rows."""
        return [
            record
            | {
                "prob_greater": self._prob_greater_matrix(self.segment_index(record["segment"]))[
                    self.arm_index(record["arm_i"]), self.arm_index(record["arm_j"])
                ]
            }
            for record in self._classical_records()
        ]

    def _classical_records(self) -> list[dict[str, Any]]:
        """The classical tests of this model's data (see :mod:`abpool.classical`), before ``prob_greater``."""
        from abpool.classical import classical_records

        return classical_records(self.cells, control=self.control)

    def _classical_columns(self) -> dict[str, str]:
        """The columns of :meth:`_classical_records`, described."""
        from abpool.classical import CLASSICAL_COLUMNS

        return CLASSICAL_COLUMNS

    def pairwise(self) -> pd.DataFrame | None:
        """``P(arm_i > arm_j)`` for every ordered pair within each segment; None beyond ``MAX_PAIRWISE_ARMS``."""
        columns = self._pairwise_columns()
        return None if columns is None else pd.DataFrame(columns)

    def _pairwise_columns(self) -> dict[str, Any] | None:
        if len(self.arms) > MAX_PAIRWISE_ARMS:
            return None
        n_arms = len(self.arms)
        first, second = (index.ravel() for index in np.indices((n_arms, n_arms)))
        ordered = first != second
        first, second = first[ordered], second[ordered]
        segments = self.segments or (None,)
        arms = np.array(self.arms, dtype=object)
        # Built from whole columns, segment after segment, rows in the order i, then j != i.
        columns = {
            "segment": [segment for segment in segments for _ in first],
            "arm_i": np.tile(arms[first], len(segments)).tolist(),
            "arm_j": np.tile(arms[second], len(segments)).tolist(),
            "prob_greater": np.concatenate([self._prob_greater_matrix(s)[first, second] for s in range(len(segments))]),
        }
        if not self.segmented:
            del columns["segment"]
        return columns

    @cached_property
    def _prob_greater_matrices(self) -> dict[int, NDArray[np.float64]]:
        return {}

    def _prob_greater_matrix(self, segment: int) -> NDArray[np.float64]:
        """``P(row arm > column arm)`` within the segment at position ``segment``: the JSON asks for it twice."""
        matrices = self._prob_greater_matrices
        if segment not in matrices:
            matrices[segment] = decisions.prob_greater_matrix(self._rates[:, segment, :])
        return matrices[segment]

    # ------------------------------------------------------------------------ sentences
    def sentences(self, limit: int = 12) -> list[str]:
        """The answers in plain sentences, as the terminal and the report print them."""
        summary = self._summary
        level = f"{self.ci:.0%}"
        metric = self.metric
        unit = f" {metric.difference_unit}" if metric.difference_unit else ""
        sentences: list[str] = []
        if not self.segmented:
            ranked = summary.sort_values("rate", ascending=False, kind="stable")
            best = ranked.iloc[0]
            sentences.append(f"{best.arm} is the best {self.arm_noun} with probability {fmt.pct(best.prob_best)}.")
            for row in ranked.iloc[1:limit].itertuples(index=False):
                probability = self.prob_greater(best.arm, row.arm)
                sentences.append(f"There is {fmt.chance(probability)} {best.arm} beats {row.arm}.")
            for row in summary[~summary["is_control"]].iloc[:limit].itertuples(index=False):
                sentence = (
                    f"{row.arm} against the control {self.control}: {metric.difference(row.lift)} "
                    f"({level} interval {fmt.interval(row.lift_ci_low, row.lift_ci_high, metric.signed)}{unit}), "
                    f"{fmt.relative(row.relative_lift)} relative "
                    f"({fmt.interval(row.relative_lift_ci_low, row.relative_lift_ci_high, fmt.relative)}); "
                    f"{fmt.chance(row.prob_beats_control)} {row.arm} beats {self.control}."
                )
                sentences.append(sentence + self._rope_sentence(row))
            sentences.append(
                f"Choosing {best.arm} gives up {metric.loss(best.expected_loss)} of {metric.label} on average "
                f"(expected loss), counting the chance that another {self.arm_noun} is in fact better."
            )
        else:
            several = len(self.treatments) > 1
            treated = summary[~summary["is_control"]]
            controls = summary[summary["is_control"]].set_index("segment")["rate"]
            for row in treated.iloc[:limit].itertuples(index=False):
                arm = f"treatment {row.arm}" if several else "the treatment"
                sentence = (
                    f"There is {fmt.chance(row.prob_beats_control)} {arm} improved {self._improved_noun()} in "
                    f"{row.segment}: {metric.value(controls[row.segment])} → {metric.value(row.rate)}, "
                    f"{metric.difference(row.lift)} "
                    f"({level} interval {fmt.interval(row.lift_ci_low, row.lift_ci_high, metric.signed)}{unit}), "
                    f"{fmt.relative(row.relative_lift)} relative."
                )
                sentences.append(sentence + self._rope_sentence(row))
            if len(treated) > limit:
                sentences.append(f"… and {len(treated) - limit:,} more rows in the table.")
        return sentences + self.population_sentences()

    def _improved_noun(self) -> str:
        return "conversion" if self.metric.kind == "binary" else self.metric.label

    # ------------------------------------------------------------------------ guardrail and decision
    def srm(self) -> pd.DataFrame:
        """Sample ratio mismatch: do the arms' users match the intended split?

        A chi-square goodness-of-fit test of the users (trials) of each arm
        against :attr:`split` (equal shares by default), for the whole
        experiment and, with segments, for each segment. ``flagged`` when
        ``p_value < 0.001`` (:data:`abpool.decisions.SRM_ALPHA`). The analysis
        still runs: a flag means the assignment may be broken, so the team
        should look before trusting the numbers.

        Columns: ``segment`` (None for the whole experiment), ``statistic``,
        ``p_value``, ``flagged``, ``observed_shares`` and ``expected_shares``
        (dicts by arm), ``trials`` (dict by arm).
        """
        return self._srm.copy()

    @cached_property
    def _srm_records(self) -> list[dict[str, Any]]:
        n = self._cell_sizes()
        split = np.ones(len(self.arms)) if self.split is None else np.asarray(self.split, dtype=float)
        expected = split / split.sum()
        rows = []
        scopes = [(None, n.sum(axis=0))]
        if self.segmented:
            scopes += list(zip(self.segments, n, strict=True))
        for segment, counts in scopes:
            statistic, p_value = decisions.srm_test(counts, split)
            rows.append(
                {
                    "segment": segment,
                    "statistic": statistic,
                    "p_value": p_value,
                    "flagged": bool(p_value < decisions.SRM_ALPHA),
                    "observed_shares": dict(zip(self.arms, (counts / counts.sum()).tolist(), strict=True)),
                    "expected_shares": dict(zip(self.arms, expected.tolist(), strict=True)),
                    "trials": dict(zip(self.arms, [int(c) for c in counts], strict=True)),
                }
            )
        return rows

    @cached_property
    def _srm(self) -> pd.DataFrame:
        return _keep_none(pd.DataFrame(self._srm_records), "segment")

    def srm_flagged(self) -> bool:
        """Whether any sample ratio mismatch test (overall or per segment) is flagged."""
        return any(row["flagged"] for row in self._srm_records)

    @cached_property
    def _recommendation_records(self) -> list[dict[str, Any]]:
        n = self._cell_sizes()
        # The summary's rows run segment by segment, arms in order: its losses as one (segments, arms) array.
        losses = self._summary_columns["expected_loss"].reshape(-1, len(self.arms))
        rows = []
        for s, segment in enumerate(self.segments or (None,)):
            decision, arm = decisions.recommend(
                self._rates[:, s, :], self.control_index, threshold=self.threshold, rope=self.rope, losses=losses[s]
            )
            small = [a for a, trials in zip(self.arms, n[s], strict=True) if trials < decisions.SMALL_SAMPLE]
            best = int(losses[s].argmin())
            rows.append(
                {
                    "segment": segment,
                    "decision": decision,
                    "arm": None if arm is None else self.arms[arm],
                    "expected_loss": float(losses[s, best]),
                    "best_arm": str(self.arms[best]),
                    "small_sample_arms": small,
                }
            )
        return rows

    @cached_property
    def _recommendations(self) -> pd.DataFrame:
        return _keep_none(pd.DataFrame(self._recommendation_records), "segment", "arm")

    def recommendation_records(self) -> list[dict[str, Any]]:
        """:meth:`recommendations` as records, one dict per row (copies), built without a DataFrame."""
        return [dict(record) for record in self._recommendation_records]

    def recommendations(self) -> pd.DataFrame:
        """The expected-loss rule's decision for the experiment, or for each segment.

        Columns: ``segment`` (None without segments), ``decision`` (``"ship"``,
        ``"keep running"`` or ``"no meaningful difference"``), ``arm`` (the arm
        to ship, the control when nothing differs, None while running),
        ``expected_loss`` and ``best_arm`` (the smallest expected loss and its
        arm), ``small_sample_arms`` (arms with fewer than 30 users, whose
        estimates rest mostly on the prior). See :func:`abpool.decisions.recommend`.
        """
        return self._recommendations.copy()

    def decision_rule(self) -> str:
        """The rule behind :meth:`recommendations`, with its threshold and ROPE, in one sentence."""
        rope = self.threshold if self.rope is None else self.rope
        metric = self.metric
        return (
            f"Decision rule: ship the arm whose expected loss is below the threshold of caring, "
            f"{metric.loss(self.threshold)} (--threshold); 'no meaningful difference' when every arm is within "
            f"±{metric.loss(rope)} of the control (the ROPE) with probability ≥ {decisions.ROPE_PROBABILITY:.0%}; "
            "otherwise keep running."
        )

    def recommendation_sentences(self, limit: int = 12) -> list[str]:
        """The recommendation in words: first in the terminal and the report."""
        records = self._recommendation_records
        metric = self.metric
        sentences = []
        for row in map(lambda record: SimpleNamespace(**record), records[:limit]):
            where = f"{row.segment}: " if self.segmented else ""
            if row.decision == decisions.SHIP and row.arm == self.control:
                # A control named "control" would read "Keep the control control".
                named = "" if str(row.arm).strip().lower() == "control" else f" {row.arm}"
                text = (
                    f"Keep the control{named}: no other {self.arm_noun} beats it by enough to matter; keeping it "
                    f"gives up {metric.loss(row.expected_loss)} in expectation, below the "
                    f"{metric.loss(self.threshold)} threshold."
                )
            elif row.decision == decisions.SHIP:
                text = (
                    f"Ship {row.arm}: choosing it gives up {metric.loss(row.expected_loss)} of {metric.label} in "
                    f"expectation, below the {metric.loss(self.threshold)} threshold of caring."
                )
            elif row.decision == decisions.NO_DIFFERENCE:
                rope = self.threshold if self.rope is None else self.rope
                text = (
                    f"No meaningful difference: every {self.arm_noun} is within ±{metric.loss(rope)} of the control "
                    f"{self.control} with probability ≥ {decisions.ROPE_PROBABILITY:.0%}."
                )
            else:
                text = (
                    f"Keep running: no {self.arm_noun} is safe to ship yet; the best, {row.best_arm}, would give up "
                    f"{metric.loss(row.expected_loss)} in expectation, above the {metric.loss(self.threshold)} "
                    "threshold."
                )
            if row.small_sample_arms:
                names = ", ".join(row.small_sample_arms)
                text += (
                    f" Caution: {names} {'has' if len(row.small_sample_arms) == 1 else 'have'} fewer than "
                    f"{decisions.SMALL_SAMPLE} users; {'its' if len(row.small_sample_arms) == 1 else 'their'} "
                    "estimates rest mostly on the prior and the other arms."
                )
            sentences.append(where + text)
        if self.segmented and len(records) > limit:
            counts = self._recommendations["decision"].value_counts()
            listed = "; ".join(f"{decision} in {count:,}" for decision, count in counts.items())
            sentences.append(f"… {len(records) - limit:,} more segments; over all {len(records):,}: {listed}.")
        return sentences

    def srm_sentences(self, limit: int = 6) -> list[str]:
        """Warnings of a sample ratio mismatch, one per flagged test (none when the split looks right)."""
        sentences = []
        flagged = [SimpleNamespace(**row) for row in self._srm_records if row["flagged"]]
        for row in flagged[:limit]:
            where = "overall" if row.segment is None else f"in segment {row.segment}"
            observed = ", ".join(f"{arm} {share:.1%}" for arm, share in row.observed_shares.items())
            expected = ", ".join(f"{arm} {share:.1%}" for arm, share in row.expected_shares.items())
            sentences.append(
                f"Sample ratio mismatch {where}: users split {observed} where {expected} was intended "
                f"(chi-square {row.statistic:,.1f}, p = {row.p_value:.1e} < {decisions.SRM_ALPHA}). The assignment "
                "may be broken: find out why before trusting these numbers."
            )
        if len(flagged) > limit:
            sentences.append(f"… and {len(flagged) - limit:,} more segments with a mismatch (see --json).")
        return sentences

    def _rope_sentence(self, row: Any) -> str:
        if self.rope is None:
            return ""
        return (
            f" The lift is practically nil (|lift| < {self.metric.amount(self.rope)}) with probability "
            f"{fmt.pct(row.prob_in_rope)}."
        )

    # ------------------------------------------------------------------------ serialising
    def settings(self) -> dict[str, Any]:
        """Every setting that reproduces this fit: ci, control, rope, threshold, split, seed and the model's own."""
        split = None if self.split is None else dict(zip(self.arms, self.split, strict=True))
        return {
            "ci": self.ci,
            "control": self.control,
            "rope": self.rope,
            "threshold": self.threshold,
            "split": split,
            "seed": self.seed,
            **self.model_settings(),
        }

    def reproduce_command(self) -> str:
        """The command line that refits this result (the data as ``DATA`` when it was not a file).

        The source is read as it was: the database's table or query, and only the rows that were
        kept (one experiment of a batch, one metric of a long table).
        """
        cells = self.cells
        origin = cells.origin
        if origin is not None and origin.location is not None:
            source = origin.command_source()
        else:
            source = [cells.source if cells.source not in ("DataFrame", "counts", "simulation") else "DATA"]
        parts = ["abpool", self.model, *source]
        for column in cells.segment_columns:
            parts += ["--segment", column]
        parts += ["--arm", cells.arm_column]
        for option, column in cells.column_options():
            parts += [option, column]
        for name, value in {**self.settings(), "prior": self.prior.name}.items():
            # A control the rule chose is chosen again by the same rule; naming it would change the reason given.
            if value is None or value is False or (name == "control" and self.control_reason != CHOSEN):
                continue
            option = "--" + name.replace("_", "-")
            if isinstance(value, dict):
                value = ",".join(f"{key}={weight:g}" for key, weight in value.items())
            parts += [option] if value is True else [option, f"{value:g}" if isinstance(value, float) else str(value)]
        return shlex.join(parts)

    def provenance(self) -> dict[str, Any]:
        """Who made this result, when, from what: versions, time, data fingerprint and source."""
        attrs = getattr(self._draws, "attrs", {})
        return {
            "abpool_version": attrs.get("creation_library_version", __version__),
            "created": self.created,
            "data_fingerprint": self.cells.fingerprint,
            "data_source": self.cells.source,
            "inference_library": attrs.get("inference_library"),
            "inference_library_version": attrs.get("inference_library_version"),
            "reproduce": self.reproduce_command(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything in the result as plain JSON-ready data (see docs/vocabulary.md for the schema)."""
        pairwise = self._pairwise_columns()
        payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "model_description": self.description,
            "settings": self.settings(),
            "prior": self.prior.describe(),
            "data": self.cells.to_record(),
            "arms": list(self.arms),
            "segments": list(self.segments),
            "metric": self.metric.describe(),
            f"grand_{self.metric.noun}": self.grand_value(),
            "control_reason": self.control_reason,
            "recommendation": {
                "rule": self.decision_rule(),
                "threshold": self.threshold,
                "rope": self.threshold if self.rope is None else self.rope,
                "rope_probability": decisions.ROPE_PROBABILITY,
                "decisions": self._recommendation_records,
                "sentences": self.recommendation_sentences(limit=len(self._recommendation_records)),
            },
            "srm": {
                "alpha": decisions.SRM_ALPHA,
                "flagged": self.srm_flagged(),
                "tests": self._srm_records,
            },
            "calibration": self.calibration,
            "sensitivity": self.prior_sensitivity,
            "summary": self.summary_records(),
            "population": self._population_records,
            "prob_greater": None if pairwise is None else column_records(pairwise),
            "classical": None if self.classical_skipped() else self._classical_answers(),
            "diagnostics": self.diagnostics.to_dict(),
            "provenance": self.provenance(),
        }
        return to_jsonable(payload)

    def to_json(self, indent: int | None = 2) -> str:
        """The result as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @cached_property
    def idata(self) -> Any:
        """The draws as an :class:`arviz.InferenceData` (ArviZ 0.x), with the same provenance attributes."""
        import arviz as az

        return az.InferenceData.from_datatree(self.tree)

    def handle_convergence(self, on_unconverged: str) -> None:
        """Act on an unconverged fit: warn (pointing at the caller's line), raise, or stay silent."""
        if self.diagnostics.converged or on_unconverged == "ignore":
            return
        message = f"the {self.model} fit did not converge: " + "; ".join(self.diagnostics.warnings)
        if on_unconverged == "raise":
            raise ConvergenceError(message)
        import warnings

        warnings.warn(message, ConvergenceWarning, stacklevel=caller_stacklevel())

    def __repr__(self) -> str:
        diag = self.diagnostics
        where = f", {len(self.segments)} segments" if self.segmented else ""
        if self.segmented:
            treated = self._summary[~self._summary["is_control"]]
            sure = int((treated["prob_beats_control"] >= 0.95).sum())
            headline = f"treatment beats control with P ≥ 95% in {sure} of {len(treated)} segment rows"
        else:
            best = self._summary.sort_values("rate", ascending=False, kind="stable").iloc[0]
            headline = f"best {best.arm} (P(best) {fmt.pct(best.prob_best)})"
        return (
            f"<{type(self).__name__} {self.model}: arms {fmt.names_list(list(self.arms))} "
            f"(control {self.control}){where}; {headline}; {diag.status}; seed {self.seed}>"
        )


def _keep_none(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Label columns hold None where a row belongs to no segment or arm (pandas would turn it into NaN)."""
    for column in columns:
        values = frame[column].tolist()
        missing = [value is None or (isinstance(value, float) and np.isnan(value)) for value in values]
        if frame[column].dtype == object and all(value is None for m, value in zip(missing, values, strict=True) if m):
            # Already what the replacement would be (an object column without NaN): replacing costs more.
            continue
        frame[column] = pd.Series(
            [None if m else value for m, value in zip(missing, values, strict=True)], index=frame.index, dtype=object
        )
    return frame


def common_from_saved(payload: dict[str, Any], tree: Any, data_type: Any = Cells) -> dict[str, Any]:
    """The :class:`Result` fields every model saves the same way, rebuilt and checked.

    ``data_type`` is the class of the model's data (:class:`~abpool.data.Cells`
    by default), rebuilt with its ``from_record``.
    """
    try:
        settings = payload["settings"]
        data = payload["data"]
        cells = data_type.from_record(data)
        split = settings["split"]
        fields = {
            "cells": cells,
            "tree": tree,
            "diagnostics": Diagnostics(**payload["diagnostics"]),
            "seed": int(settings["seed"]),
            "ci": float(settings["ci"]),
            "control": str(settings["control"]),
            "control_reason": str(payload["control_reason"]),
            "rope": None if settings["rope"] is None else float(settings["rope"]),
            "threshold": float(settings["threshold"]),
            "split": None if split is None else tuple(float(split[arm]) for arm in payload["arms"]),
            "calibration": payload["calibration"],
            # Results saved before the sensitivity check existed have no such key.
            "prior_sensitivity": payload.get("sensitivity"),
            "created": str(payload["provenance"]["created"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidDataError(f"the saved result is incomplete ({exc!r}); save it again") from None
    drawn = getattr(tree, "attrs", {}).get("data_fingerprint")
    if cells.fingerprint != data.get("fingerprint") or drawn != data.get("fingerprint"):
        raise InvalidDataError(
            "the saved draws and summary come from different data (fingerprints differ); save the result again"
        )
    return fields


def provenance_attrs(
    *,
    model: str,
    prior: Any,
    seed: int,
    cells: Cells,
    settings: dict[str, Any],
    created: str,
    inference: tuple[str, str],
) -> dict[str, Any]:
    """Attributes of a result's draws: ArviZ's provenance keys plus abpool's own."""
    return {
        "created_at": created,
        "creation_library": "abpool",
        "creation_library_version": __version__,
        "creation_library_language": "Python",
        "inference_library": inference[0],
        "inference_library_version": inference[1],
        "abpool_schema_version": SCHEMA_VERSION,
        "model": model,
        "prior": str(prior),
        "seed": int(seed),
        "data_fingerprint": cells.fingerprint,
        "data_source": cells.source,
        "settings": json.dumps(to_jsonable(settings), sort_keys=True),
    }
