"""Report sections for a :class:`~abpool.segments_result.SegmentsResult`.

Everything shown is read from the result (summary, population answers,
classical table, diagnostics); the only arithmetic here is formatting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from abpool import plots
from abpool.models.segments import FORM_DESCRIPTIONS
from abpool.report import format as fmt
from abpool.report.blocks import Alert, Block, Decisions, Facts, Report, Section, Table, Text
from abpool.report.figures import embed
from abpool.report.variants import _classical_table, data_facts, mcmc_blocks, names_list
from abpool.segments_result import MODEL_NAME

if TYPE_CHECKING:
    from abpool.segments_result import SegmentsResult

MAX_SEGMENTS_IN_FIGURES = 40
MAX_ROWS_IN_TABLE = 100
MAX_SENTENCES = 12


def chance(probability: float) -> str:
    """``"an 88.8% chance"``, ``"a 99.4% chance"``, ``"a more than 99.9% chance"``.

    Examples
    --------
    >>> chance(0.888), chance(0.994), chance(0.99991)
    ('an 88.8% chance', 'a 99.4% chance', 'a more than 99.9% chance')
    """
    if probability > 0.999:
        return "a more than 99.9% chance"
    if probability < 0.001:
        return "a less than 0.1% chance"
    text = f"{probability:.1%}"
    # Spoken "eight…", "eleven", "eighteen" take "an".
    return f"{'an' if text.startswith(('8', '11.', '18.')) else 'a'} {text} chance"


def _segment_names(result: SegmentsResult) -> str:
    return names_list(list(result.layout.segments))


def question_blocks(result: SegmentsResult) -> tuple[Block, ...]:
    """The question and the data, with the data's fingerprint."""
    cells = result.cells
    layout = result.layout
    arms = layout.treatments
    what = "the treatment" if len(arms) == 1 else f"each of the treatments {', '.join(arms)}"
    question = (
        f"Did {what} improve conversion over the control ({layout.control}) in each of the "
        f"{len(layout.segments)} segments ({_segment_names(result)}), and by how much?"
    )
    pooling = (
        "One varying-intercept, varying-slope logistic regression answers for every segment at once: each segment "
        "has its own control rate and its own treatment effect, and both are drawn from common Normal "
        "distributions, so a segment with little data borrows strength from the others and the probabilities below "
        "need no correction for the number of segments."
    )
    return (Text(question), Text(pooling), data_facts(cells))


def decision_sentences(result: SegmentsResult) -> tuple[str, ...]:
    """Per segment: the chance the treatment helped; then the population's answer."""
    summary = result.summary()
    several = len(result.layout.treatments) > 1
    level = f"{result.ci:.0%}"
    sentences = []
    for row in summary.iloc[:MAX_SENTENCES].itertuples(index=False):
        arm = f"treatment {row.arm}" if several else "the treatment"
        sentences.append(
            f"There is {chance(row.prob_better)} {arm} improved conversion in {row.segment}: "
            f"{fmt.rate(row.control_rate)} → {fmt.rate(row.treatment_rate)}, lift {fmt.points(row.lift)} "
            f"({level} interval {fmt.points(row.lift_ci_low)} to {fmt.points(row.lift_ci_high)})."
        )
    if len(summary) > MAX_SENTENCES:
        sentences.append(f"… and {len(summary) - MAX_SENTENCES} more rows in the table below.")
    population = result.population()
    for arm in result.layout.treatments:
        name = f"treatment {arm}" if several else "the treatment"
        new = population["new_segment"][arm]
        sentences.append(
            f"Across segments, the average effect of {name} is positive with probability "
            f"{fmt.pct(population['prob_mu_b_positive'][arm])}; in a new segment from the same population it would "
            f"help with probability {fmt.pct(new['prob_better'])} (lift {fmt.points(new['lift']['mean'])})."
        )
    return tuple(sentences)


def estimates_table(result: SegmentsResult) -> Table:
    """One row per segment × treatment arm."""
    summary = result.summary()
    level = f"{result.ci:.0%}"
    several = len(result.layout.treatments) > 1
    columns = (
        "segment",
        *(("arm",) if several else ()),
        "successes / users: control; treatment",
        f"control rate ({level})",
        f"treatment rate ({level})",
        f"lift ({level})",
        "P(better)",
        "expected loss",
        "pooling",
    )
    rows = tuple(
        (
            str(row.segment),
            *((str(row.arm),) if several else ()),
            f"{row.successes_control:,}/{row.trials_control:,}; {row.successes_treatment:,}/{row.trials_treatment:,}",
            f"{fmt.rate(row.control_rate)} ({fmt.interval(row.control_rate_ci_low, row.control_rate_ci_high)})",
            f"{fmt.rate(row.treatment_rate)} ({fmt.interval(row.treatment_rate_ci_low, row.treatment_rate_ci_high)})",
            f"{fmt.points(row.lift)} ({fmt.interval(row.lift_ci_low, row.lift_ci_high, fmt.signed)})",
            fmt.pct(row.prob_better),
            f"{100 * row.expected_loss:.2f} pp",
            f"{row.pooling:.2f}",
        )
        for row in summary.iloc[:MAX_ROWS_IN_TABLE].itertuples(index=False)
    )
    note = (
        "Rates are the article's a_inv (control) and fin (treatment). Expected loss is the rate given up, on "
        "average, by shipping the treatment in that segment. Pooling is how far the segment's effect is pulled "
        "toward the population: 0 = its own data decide, 1 = the population decides. Lifts in percentage points."
    )
    if len(summary) > MAX_ROWS_IN_TABLE:
        note += f" The first {MAX_ROWS_IN_TABLE} of {len(summary):,} rows are shown; summary.json has all."
    numeric = (False, *((False,) if several else ()), *[True] * 7)
    return Table("Estimates by segment", columns, rows, numeric, note)


def population_table(result: SegmentsResult) -> Table:
    """The population level: mean control rate, spreads, mean effect, a new segment's lift."""
    population = result.population()
    rows: list[tuple[str, ...]] = [
        (
            "control rate of a typical segment, invlogit(mu_a)",
            fmt.rate(population["control_rate"]["median"]),
            fmt.interval(population["control_rate"]["ci_low"], population["control_rate"]["ci_high"]),
        ),
        (
            "spread of control log-odds, sigma_a",
            fmt.number(population["sigma_a"]["median"]),
            fmt.interval(population["sigma_a"]["ci_low"], population["sigma_a"]["ci_high"], fmt.number),
        ),
    ]
    for arm in result.layout.treatments:
        mu, sigma = population["mu_b"][arm], population["sigma_b"][arm]
        new = population["new_segment"][arm]["lift"]
        rows += [
            (
                f"mean effect of arm {arm} (log-odds), mu_b",
                fmt.number(mu["median"]),
                fmt.interval(mu["ci_low"], mu["ci_high"], fmt.number),
            ),
            (f"P(mu_b > 0) for arm {arm}", fmt.pct(population["prob_mu_b_positive"][arm]), ""),
            (
                f"spread of arm {arm}'s effect across segments, sigma_b",
                fmt.number(sigma["median"]),
                fmt.interval(sigma["ci_low"], sigma["ci_high"], fmt.number),
            ),
            (
                f"lift of arm {arm} in a new segment",
                fmt.points(new["median"]),
                fmt.interval(new["ci_low"], new["ci_high"], fmt.signed),
            ),
        ]
    return Table(
        "Population",
        ("quantity", "median", f"{result.ci:.0%} interval"),
        tuple(rows),
        (False, True, True),
        "Medians and equal-tailed intervals of the posterior.",
    )


def figure_blocks(result: SegmentsResult) -> tuple[Block, ...]:
    """Forest plot (rates and lift per segment) and the shrinkage of the lifts."""
    summary = result.summary()
    if len(summary) > MAX_SEGMENTS_IN_FIGURES:
        return (
            Text(
                f"Figures are drawn for up to {MAX_SEGMENTS_IN_FIGURES} segment rows; this analysis has "
                f"{len(summary):,}. Draw them for a subset from Python (abpool.plots)."
            ),
        )
    return (
        embed(
            plots.plot_segments_forest(summary),
            "Rates and lift by segment",
            "forest plot of control and treatment rates and of the lift per segment",
            f"Left: control (hollow) and treatment (filled) rates with {result.ci:.0%} intervals. Right: the lift, "
            "zero dashed, with the probability that the treatment is better.",
        ),
        embed(
            plots.plot_segments_shrinkage(result),
            "Shrinkage of the lifts",
            "each segment's observed lift and its pooled estimate",
            "Hollow: the lift observed in the segment alone; filled: the model's estimate; grey: its interval; "
            "dashed: the overall observed lift. Marker area grows with the segment's users.",
        ),
    )


def prior_blocks(result: SegmentsResult) -> tuple[Block, ...]:
    """The priors, stated and argued."""
    return (
        Facts(
            "",
            (
                ("priors", str(result.prior)),
                (
                    "correlation",
                    "LKJ(" + f"{result.prior.lkj_eta:g}" + ") on intercept–slope correlation"
                    if result.correlated
                    else "intercepts and slopes independent",
                ),
                ("parameterisation", FORM_DESCRIPTIONS[result.parameterisation]),
            ),
        ),
        Text(
            "The HalfNormal prior on the spreads is conservative: it favours pooling, a guard against the "
            "incentives to find effects that are not there. The priors are stated so they can be argued with: refit "
            "with --prior flat or --prior conservative (or --prior-scale) and compare. If reasonable priors agree, "
            "the data speak; if they disagree, collect more data."
        ),
    )


def diagnostic_blocks(result: SegmentsResult, *, figures: bool = True) -> tuple[Block, ...]:
    """Divergences, R-hat, ESS; a warning box when the fit is unreliable; rank plots."""
    diag = result.diagnostics
    blocks: list[Block] = []
    if not diag.converged:
        blocks.append(
            Alert(
                "This fit is unreliable — do not act on these numbers yet",
                (*diag.warnings, "Refit with more draws and tuning (--draws, --tune) and check again."),
            )
        )
    blocks.extend(mcmc_blocks(result, f"{result.sampler} NUTS", figures=figures, max_rates=4))
    return tuple(blocks)


def reproduce_command(result: SegmentsResult) -> str:
    """The command line that refits this result."""
    source = result.cells.source if result.cells.source != "DataFrame" else "DATA"
    parts = ["abpool segments", source]
    parts += [f"--segment {column}" for column in result.cells.segment_columns]
    parts += [
        f"--arm {result.cells.arm_column}",
        f"--control {result.layout.control}",
        f"--prior {result.prior.name}",
        f"--prior-scale {result.prior.scale:g}",
        f"--sampler {result.sampler}",
        f"--draws {result.diagnostics.draws}",
        f"--chains {result.diagnostics.chains}",
        f"--ci {result.ci:g}",
        f"--seed {result.seed}",
    ]
    if result.correlated:
        parts.append("--correlated")
    return " ".join(parts)


def segments_sections(
    result: SegmentsResult, *, prefix: str = "", heading: str = "", figures: bool = True
) -> tuple[Section, ...]:
    """Every section of a segments report (``prefix``/``heading`` let several results share a report)."""
    head = f"{heading}: " if heading else ""
    sections = [
        Section(f"{prefix}question", f"{head}The question and the data", question_blocks(result)),
        Section(f"{prefix}decisions", f"{head}Decisions", (Decisions(decision_sentences(result)),)),
        Section(f"{prefix}estimates", f"{head}Estimates", (estimates_table(result), population_table(result))),
    ]
    if figures:
        sections.append(Section(f"{prefix}figures", f"{head}Figures", figure_blocks(result)))
    sections.append(Section(f"{prefix}prior", f"{head}Priors", prior_blocks(result)))
    classical = _classical_table(result.classical())
    if classical is not None:
        sections.append(
            Section(
                f"{prefix}classical",
                f"{head}Classical comparison",
                (
                    Text(
                        "For contrast, the classical view: a two-proportion test per segment with p-values adjusted "
                        "for the number of segments. The multilevel model needs no such adjustment."
                    ),
                    classical,
                ),
            )
        )
    sections.append(Section(f"{prefix}diagnostics", f"{head}Diagnostics", diagnostic_blocks(result, figures=figures)))
    return tuple(sections)


def provenance(result: SegmentsResult) -> tuple[tuple[str, str], ...]:
    """Version, seed and settings: what is needed to reproduce the result."""
    from abpool._version import __version__

    return (
        ("abpool version", __version__),
        ("model", MODEL_NAME),
        ("sampler", result.sampler),
        ("seed", str(result.seed)),
        ("fitted", result.created),
        ("data fingerprint", result.cells.fingerprint),
        ("reproduce", reproduce_command(result)),
    )


def segments_report(result: SegmentsResult, *, figures: bool = True) -> Report:
    """The report of one segments result."""
    warnings = () if result.diagnostics.converged else tuple(result.diagnostics.warnings)
    return Report(
        title=f"Experiment by segment: {_segment_names(result)}",
        subtitle=f"Varying-intercept, varying-slope logistic regression, priors {result.prior.name}",
        sections=segments_sections(result, figures=figures),
        provenance=provenance(result),
        warnings=warnings,
    )
