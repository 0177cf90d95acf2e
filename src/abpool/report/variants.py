"""Report sections for a :class:`~abpool.results.VariantsResult`.

Everything shown is read from the result (its summary, probabilities, draws
and diagnostics); the only arithmetic here is formatting.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import pandas as pd

from abpool import plots
from abpool.errors import InvalidArgumentError
from abpool.report import format as fmt
from abpool.report.blocks import Alert, Block, Decisions, Facts, Report, Section, Table, Text
from abpool.report.figures import embed
from abpool.results import MODEL_NAME

if TYPE_CHECKING:
    from abpool.results import VariantsResult

# Beyond these sizes a figure or table stops being readable; the JSON keeps everything.
MAX_VARIANTS_IN_FIGURES = 40
MAX_VARIANTS_IN_MATRIX = 12
MAX_ROWS_IN_TABLE = 100
MAX_SENTENCES = 8
SECTION_PARTS = ("question", "decisions", "estimates", "figures", "prior", "classical", "diagnostics")


def names_list(names: list[str]) -> str:
    """Up to eight names in full, else the first six and the count."""
    return ", ".join(names) if len(names) <= 8 else f"{', '.join(names[:6])}, … ({len(names)} in all)"


def question_blocks(result: VariantsResult) -> tuple[Block, ...]:
    """The question asked and the data it was asked of, with the data's fingerprint."""
    cells = result.cells
    total_n, total_y = int(result.trials.sum()), int(result.successes.sum())
    question = (
        f"Which of the {len(result.names)} variants ({names_list(result.names)}) has the highest success rate, "
        f"and by how much does each differ from the control, {result.control}? "
        f"All {total_n:,} trials gave {total_y:,} successes: a grand rate of {fmt.rate(result.grand_rate)}."
    )
    pooling = (
        "One hierarchical model answers every comparison at once: each variant's rate is drawn from a common "
        "Beta(a, b) population, so each estimate is pulled toward the grand rate as much as its sample size "
        "deserves, and the probabilities below need no correction for the number of comparisons."
    )
    return (Text(question), Text(pooling), data_facts(cells))


def data_facts(cells: Any) -> Facts:
    """Where the data came from, its form, its columns and its fingerprint."""
    form = "one row per user" if cells.form == "units" else "aggregated counts"
    items = [
        ("source", cells.source),
        ("form", f"{form}, {cells.input_rows:,} rows read, {len(cells.table):,} cells"),
    ]
    if cells.segment_columns:
        items.append(("segment columns", ", ".join(cells.segment_columns)))
    items += [("arm column", cells.arm_column), ("fingerprint (SHA-256 of the cells)", cells.fingerprint)]
    return Facts("Data", tuple(items))


def decision_sentences(result: VariantsResult) -> tuple[str, ...]:
    """The answers as plain sentences ("There is a 74.6% chance C beats B")."""
    summary = result.summary()
    ranked = summary.sort_values("mean", ascending=False)
    best = ranked.iloc[0]
    sentences = [f"{best.variant} is the best variant with probability {fmt.pct(best.prob_best)}."]
    for row in ranked.iloc[1:MAX_SENTENCES].itertuples(index=False):
        sentences.append(
            f"There is a {fmt.pct(result.prob_greater(best.variant, row.variant))} chance "
            f"{best.variant} beats {row.variant}."
        )
    level = f"{result.ci:.0%}"
    others = summary[summary["variant"] != result.control]
    for row in others.iloc[:MAX_SENTENCES].itertuples(index=False):
        sentence = (
            f"{row.variant} against the control {result.control}: lift {fmt.points(row.lift)} "
            f"({level} interval {fmt.points(row.lift_ci_low)} to {fmt.points(row.lift_ci_high)}); "
            f"a {fmt.pct(row.prob_beats_control)} chance {row.variant} beats {result.control}."
        )
        if result.rope is not None:
            sentence += (
                f" The lift is practically nil (|lift| < {100 * result.rope:g} pp) with probability "
                f"{fmt.pct(row.prob_in_rope)}."
            )
        sentences.append(sentence)
    sentences.append(
        f"Choosing {best.variant} gives up {fmt.points(best.expected_loss).lstrip('+')} of success rate on average "
        "(expected loss), counting the chance that another variant is in fact better."
    )
    return tuple(sentences)


def estimates_table(result: VariantsResult) -> Table:
    """One row per variant: counts, estimates, shrinkage, P(best) and lift against the control."""
    summary = result.summary()
    level = f"{result.ci:.0%}"
    control = result.control
    columns = [
        "variant",
        "trials",
        "successes",
        "observed",
        f"posterior mean ({level} interval)",
        "shrinkage",
        "P(best)",
        "expected loss",
        f"lift vs {control} ({level} interval)",
        f"P(> {control})",
    ]
    if result.rope is not None:
        columns.append(f"P(|lift| < {100 * result.rope:g} pp)")
    rows = []
    for row in summary.iloc[:MAX_ROWS_IN_TABLE].itertuples(index=False):
        cells = [
            str(row.variant),
            f"{row.trials:,}",
            f"{row.successes:,}",
            fmt.rate(row.observed_rate),
            f"{fmt.rate(row.mean)} ({fmt.interval(row.ci_low, row.ci_high)})",
            f"{row.shrinkage:.2f}",
            fmt.pct(row.prob_best),
            fmt.points(row.expected_loss).lstrip("+"),
            fmt.DASH
            if row.lift != row.lift
            else f"{fmt.points(row.lift)} ({fmt.interval(row.lift_ci_low, row.lift_ci_high, fmt.signed)})",
            fmt.pct(row.prob_beats_control),
        ]
        if result.rope is not None:
            cells.append(fmt.pct(row.prob_in_rope))
        rows.append(tuple(cells))
    note = (
        "Shrinkage is the weight the estimate puts on the population mean, (a+b)/(a+b+n): "
        "0 = the variant speaks for itself, 1 = it is replaced by the population mean. "
        "Lifts are in percentage points (pp)."
    )
    if len(summary) > MAX_ROWS_IN_TABLE:
        note += f" The first {MAX_ROWS_IN_TABLE} of {len(summary):,} variants are shown; summary.json has all."
    return Table("Estimates", tuple(columns), tuple(rows), numeric=(False, *[True] * (len(columns) - 1)), note=note)


def prob_greater_table(result: VariantsResult) -> Table:
    """The matrix of P(row beats column) as a table."""
    matrix = result.prob_greater_matrix()
    names = list(matrix.index)
    rows = tuple(
        (name, *("" if other == name else fmt.pct(matrix.loc[name, other]) for other in names)) for name in names
    )
    return Table("P(row beats column)", ("", *names), rows, numeric=(False, *[True] * len(names)))


def population_table(result: VariantsResult) -> Table:
    """Posterior quantiles of the population parameters (medians: the mean of a+b can be infinite)."""
    hyper = result.hyperparameters()
    labels = {
        "population_mean": "population mean a/(a+b)",
        "concentration": "concentration a+b",
        "a": "a",
        "b": "b",
    }
    rows = tuple(
        (label, fmt.number(hyper[key]["median"], 4), fmt.interval(hyper[key]["q025"], hyper[key]["q975"], fmt.number))
        for key, label in labels.items()
    )
    note = (
        "Medians and 95% intervals, never means: under the article's prior the posterior of a+b has so heavy "
        "a tail that its mean can be infinite. A large a+b means strong pooling."
    )
    return Table("Population parameters", ("parameter", "median", "95% interval"), rows, (False, True, True), note)


def figure_blocks(result: VariantsResult) -> tuple[Block, ...]:
    """Shrinkage, posterior densities, boxplots and the P(i > j) heat map."""
    n = len(result.names)
    if n > MAX_VARIANTS_IN_FIGURES:
        return (
            Text(
                f"Figures are drawn for up to {MAX_VARIANTS_IN_FIGURES} variants; this test has {n:,}. "
                "Draw them for a subset from Python (abpool.plots)."
            ),
        )
    summary = result.summary()
    moved = summary.iloc[(summary["mean"] - summary["observed_rate"]).abs().argmax()]
    caption = (
        f"Hollow: observed rate; filled: posterior mean; grey: {result.ci:.0%} interval; dashed: the grand rate "
        f"{fmt.rate(result.grand_rate)}. Marker area grows with trials. {moved.variant} moves furthest: "
        f"{fmt.rate(moved.observed_rate)} → {fmt.rate(moved['mean'])} (shrinkage {moved.shrinkage:.2f})."
    )
    shown = result.names[:8]
    blocks: list[Block] = [
        embed(plots.plot_shrinkage(result), "Shrinkage toward the grand rate", "shrinkage plot", caption),
        embed(
            plots.plot_posterior(result, shown),
            "Posterior densities",
            "posterior density of each variant's rate",
            "Where each variant's rate plausibly lies; the dashed line is the grand rate."
            + ("" if len(shown) == n else f" The first {len(shown)} variants are drawn."),
        ),
        embed(
            plots.plot_boxplots(result),
            "Posterior rates",
            "boxplots of the posterior rates",
            f"Boxes hold the middle 50% of each posterior, whiskers the {result.ci:.0%} interval.",
        ),
        embed(
            plots.plot_prob_greater(result),
            "Pairwise comparisons",
            "heat map of the probability that each row variant beats each column variant",
            "Each cell is the posterior probability that the row's rate exceeds the column's.",
        ),
    ]
    return tuple(blocks)


def prior_blocks(result: VariantsResult) -> tuple[Block, ...]:
    """The prior, stated, and why it is there."""
    prior = result.prior
    kind = (
        "proper"
        if prior.proper
        else "improper (the posterior is proper because a variant has both successes and failures)"
    )
    return (
        Facts("", (("hyperprior", str(prior)), ("kind", kind), ("rates", "each variant's rate ~ Beta(a, b)"))),
        Text(
            "The prior on the population parameters is stated so that it can be argued with: refit with "
            "another (for example --prior lognormal) and compare. If reasonable priors give similar answers, "
            "the data speak; if they disagree, collect more data."
        ),
    )


def _p_value(value: float) -> str:
    return fmt.DASH if value != value else "<0.0001" if value < 1e-4 else f"{value:.4f}"


# Columns of the classical table as shown: (column, heading, formatter); those absent are skipped.
_CLASSICAL_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("segment", "segment", str),
    ("rate_i", "rate i", fmt.rate),
    ("rate_j", "rate j", fmt.rate),
    ("difference", "difference", fmt.points),
    ("test", "test", str),
    ("p_value", "p (raw)", _p_value),
    ("p_bonferroni", "p Bonferroni", _p_value),
    ("p_holm", "p Holm", _p_value),
    ("p_bh", "p BH", _p_value),
    ("prob_greater", "P(i > j), Bayesian", fmt.pct),
)


def _classical_table(value: Any) -> Table | None:
    if not isinstance(value, pd.DataFrame) or value.empty or not {"arm_i", "arm_j"} <= set(value.columns):
        return None
    shown = [c for c in _CLASSICAL_COLUMNS if c[0] in value.columns and not value[c[0]].isna().all()]
    rows = tuple(
        (f"{record['arm_i']} vs {record['arm_j']}", *(format_(record[column]) for column, _, format_ in shown))
        for record in value.to_dict("records")
    )
    columns = ("comparison (i vs j)", *(heading for _, heading, _ in shown))
    numeric = (False, *(column not in ("segment", "test") for column, _, _ in shown))
    note = (
        "Two-sided tests of equal rates; p-values adjusted over the whole family of comparisons "
        "(Bonferroni, Holm, Benjamini-Hochberg). The last column is the hierarchical model's answer."
    )
    return Table("Classical comparison", columns, rows, numeric, note)


def classical_blocks(result: VariantsResult) -> tuple[Block, ...]:
    """The frequentist comparison side by side, when the result provides one (``result.classical()``)."""
    if not hasattr(result, "classical"):
        return ()
    table = _classical_table(result.classical())
    if table is None:
        return ()
    return (
        Text(
            "For contrast, the classical view: a two-proportion test per pair with p-values adjusted for "
            "multiple comparisons. The hierarchical model above needs no such adjustment."
        ),
        table,
    )


def diagnostic_blocks(result: VariantsResult, *, figures: bool = True) -> tuple[Block, ...]:
    """Convergence: a statement for independent draws; table and rank plots for MCMC."""
    diag = result.diagnostics
    blocks: list[Block] = []
    if not diag.converged:
        blocks.append(
            Alert(
                "This fit is unreliable — do not act on these numbers yet",
                (
                    *diag.warnings,
                    "Refit with more draws (--draws), or with the exact engine, and check again."
                    if result.engine == "mcmc"
                    else "Refit with the proper prior (--prior lognormal) or collect more data.",
                ),
            )
        )
    if result.engine == "exact":
        edge = (
            ""
            if diag.edge_mass is None
            else f" Posterior mass estimated beyond the grid: {diag.edge_mass:.1e}."
            if diag.edge_mass > 0
            else " No posterior mass was found beyond the grid."
        )
        blocks.append(
            Text(
                f"The exact engine integrates the population parameters numerically over {diag.grid_points or 0:,} "
                f"grid cells and then draws {diag.draws:,} independent samples. Independent draws have no chains "
                f"to mix and no divergences: there is nothing to converge.{edge}"
            )
        )
        return tuple(blocks)
    blocks.extend(mcmc_blocks(result, "PyMC NUTS", figures=figures))
    return tuple(blocks)


def mcmc_blocks(result: Any, engine: str, *, figures: bool = True, max_rates: int = 6) -> tuple[Block, ...]:
    """Sampler facts, the per-quantity convergence table and (with ``figures``) rank plots of an MCMC fit."""
    diag = result.diagnostics
    table = plots.convergence_table(result)
    blocks: list[Block] = [
        Facts(
            "Sampler",
            (
                ("engine", engine),
                ("chains × draws", f"{diag.chains} × {diag.draws:,}"),
                ("divergent transitions", f"{diag.divergences}"),
                ("largest R-hat", fmt.number(diag.max_rhat, 4) + " (want ≤ 1.01)"),
                (
                    "smallest ESS (bulk / tail)",
                    f"{diag.min_ess_bulk:,.0f} / {diag.min_ess_tail:,.0f} (want ≥ {100 * diag.chains})",
                ),
                ("target_accept, attempts", f"{diag.target_accept}, {diag.attempts}"),
            ),
        ),
        Table(
            "Convergence by quantity",
            ("quantity", "R-hat", "ESS bulk", "ESS tail", "MCSE of mean"),
            tuple(
                (str(name), f"{row.r_hat:.3f}", f"{row.ess_bulk:,.0f}", f"{row.ess_tail:,.0f}", f"{row.mcse_mean:.4f}")
                for name, row in table.iterrows()
            ),
            (False, True, True, True, True),
        ),
    ]
    if figures:
        blocks.append(
            embed(
                plots.plot_convergence(result, max_rates=max_rates),
                "Chains",
                "per-chain densities and rank plots",
                "Well-mixed chains overlap on the left and have flat rank histograms on the right.",
            )
        )
    return tuple(blocks)


def reproduce_command(result: VariantsResult) -> str:
    """The command line that refits this result exactly."""
    source = result.cells.source if result.cells.source not in ("DataFrame", "counts") else "DATA"
    parts = [
        "abpool variants",
        source,
        f"--engine {result.engine}",
        f"--prior {result.prior.name}",
        f"--seed {result.seed}",
        f"--draws {result.diagnostics.draws}",
        f"--ci {result.ci:g}",
        f"--control {result.control}",
    ]
    if result.engine == "mcmc":
        parts.append(f"--chains {result.diagnostics.chains}")
    if result.rope is not None:
        parts.append(f"--rope {result.rope:g}")
    return " ".join(parts)


def provenance(result: VariantsResult) -> tuple[tuple[str, str], ...]:
    """Version, seed and settings: what is needed to reproduce the result."""
    from abpool._version import __version__

    return (
        ("abpool version", __version__),
        ("model", MODEL_NAME),
        ("engine", result.engine),
        ("seed", str(result.seed)),
        ("draws", f"{result.draws.shape[0]:,}"),
        ("fitted", result.created),
        ("data fingerprint", result.cells.fingerprint),
        ("reproduce", reproduce_command(result)),
    )


def variants_sections(
    result: VariantsResult,
    *,
    prefix: str = "",
    heading: str = "",
    figures: bool = True,
    parts: Collection[str] | None = None,
) -> tuple[Section, ...]:
    """Every section of a variants report.

    Parameters
    ----------
    result : VariantsResult
    prefix : str
        Prepended to section anchors, so several results can share one report.
    heading : str
        Prepended to section titles (e.g. the scenario's name).
    figures : bool
        Include the figures (a notebook's quick view leaves them out).
    parts : collection of str, optional
        Keep only these sections, by id without prefix: ``question``,
        ``decisions``, ``estimates``, ``figures``, ``prior``, ``classical``,
        ``diagnostics`` (default: all).
    """
    head = f"{heading}: " if heading else ""
    wanted = set(SECTION_PARTS if parts is None else parts)
    unknown = wanted - set(SECTION_PARTS)
    if unknown:
        raise InvalidArgumentError(f"unknown report part(s) {sorted(unknown)}; choose from {', '.join(SECTION_PARTS)}")
    estimates: list[Block] = [estimates_table(result)]
    if len(result.names) <= MAX_VARIANTS_IN_MATRIX:
        estimates.append(prob_greater_table(result))
    estimates.append(population_table(result))
    sections = [
        Section(f"{prefix}question", f"{head}The question and the data", question_blocks(result)),
        Section(f"{prefix}decisions", f"{head}Decisions", (Decisions(decision_sentences(result)),)),
        Section(f"{prefix}estimates", f"{head}Estimates", tuple(estimates)),
    ]
    if figures:
        sections.append(Section(f"{prefix}figures", f"{head}Figures", figure_blocks(result)))
    sections.append(Section(f"{prefix}prior", f"{head}Prior", prior_blocks(result)))
    classical = classical_blocks(result)
    if classical:
        sections.append(Section(f"{prefix}classical", f"{head}Classical comparison", classical))
    sections.append(Section(f"{prefix}diagnostics", f"{head}Diagnostics", diagnostic_blocks(result, figures=figures)))
    return tuple(s for s in sections if s.id.removeprefix(prefix) in wanted)


def variants_report(result: VariantsResult, *, figures: bool = True) -> Report:
    """The report of one variants result."""
    warnings = () if result.diagnostics.converged else tuple(result.diagnostics.warnings)
    return Report(
        title=f"A/B/n test: {names_list(result.names)}",
        subtitle=f"Hierarchical Beta-Binomial model, {result.engine} engine, prior {result.prior.name}",
        sections=variants_sections(result, figures=figures),
        provenance=provenance(result),
        warnings=warnings,
    )
