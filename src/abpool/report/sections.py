"""The sections of any result's report, built through the result contract.

Everything shown is read from the result (its summary, population, sentences,
classical table, diagnostics and the figures its model asks for); the only
arithmetic here is formatting.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from abpool import _format as fmt
from abpool.diagnostics import RHAT_LIMIT, ess_needed
from abpool.errors import InvalidArgumentError
from abpool.report.blocks import Alert, Block, Decisions, Facts, Report, Section, Table, Text
from abpool.report.figures import embed
from abpool.report.tables import (
    SENSITIVITY_TITLE,
    calibration_table,
    classical_table,
    data_facts,
    estimates_table,
    pairwise_table,
    population_table,
    sensitivity_decisions_table,
    sensitivity_table,
)

if TYPE_CHECKING:
    from abpool.result import Result

SECTION_PARTS = (
    "recommendation",
    "question",
    "decisions",
    "estimates",
    "figures",
    "prior",
    "sensitivity",
    "multiplicity",
    "classical",
    "diagnostics",
)
CALIBRATION_STUDY = (
    "Pooling is not a multiplicity correction, and P(beats control) is not a p-value. Measured in abpool's "
    "calibration study (docs/calibration.md): when no arm differs, claiming a winner at P ≥ 95% gives false "
    "winners in about 5% of experiments with 2 to 16 variants; once one arm truly differs, the rule behaves like "
    "a false-discovery rule (13–23% of experiments claim some false winner); across 8 segments in A/A "
    "experiments it claims a false segment effect in about 20% of experiments at 95% (7.5% at 97.5%)."
)


def recommendation_blocks(result: Result) -> tuple[Block, ...]:
    """What to act on, first: a sample-ratio-mismatch warning, the recommendation and its rule, the control."""
    blocks: list[Block] = []
    mismatch = result.srm_sentences()
    if mismatch:
        blocks.append(Alert("Sample ratio mismatch — check the assignment before acting", tuple(mismatch)))
    blocks.append(Decisions(tuple(result.recommendation_sentences())))
    rope = result.threshold if result.rope is None else result.rope
    blocks.append(
        Facts(
            "",
            (
                ("rule", result.decision_rule()),
                ("threshold of caring", result.metric.loss(result.threshold)),
                ("ROPE", f"±{result.metric.loss(rope)}"),
                ("control", f"{result.control} ({result.control_reason})"),
            ),
        )
    )
    return tuple(blocks)


def multiplicity_blocks(result: Result) -> tuple[Block, ...]:
    """Honest words on multiple comparisons, and this design's own calibration when it was run."""
    blocks: list[Block] = [Text(CALIBRATION_STUDY)]
    found = result.calibration
    if not found:
        blocks.append(
            Text(
                "This design's own false-winner rate was not measured: rerun with --calibrate (Python: "
                "result.calibrate()) to simulate A/A experiments with these arms and users."
            )
        )
        return tuple(blocks)
    blocks.append(calibration_table(found))
    return tuple(blocks)


def question_blocks(result: Result) -> tuple[Block, ...]:
    """The question asked and the data it was asked of, with the data's fingerprint."""
    return (Text(result.question()), Text(result.method_statement()), data_facts(result))


def figure_blocks(result: Result) -> tuple[Block, ...]:
    """The figures the result's model shows, inline."""
    specs = result.figure_specs()
    if not specs:
        return (
            Text(
                f"This analysis has too many rows ({len(result.summary()):,}) for readable figures; draw them for a "
                "subset from Python (abpool.plots)."
            ),
        )
    return tuple(embed(spec.draw(), spec.title, spec.alt, spec.caption) for spec in specs)


def prior_blocks(result: Result) -> tuple[Block, ...]:
    """The prior, stated, and why it is there."""
    return (Facts("", tuple(result.prior_facts())), Text(result.prior_statement()))


SENSITIVITY_WHY = (
    "If reasonable priors give similar results, the data speak for themselves; if they give very different "
    "results, that is a strong signal to collect more data before acting. Each prior below is a refit of the same "
    "model and data, with the same settings and seed."
)


def sensitivity_blocks(result: Result, *, figures: bool = True) -> tuple[Block, ...]:
    """The answers and decisions under a panel of reasonable priors, with a verdict per decision."""
    found = result.prior_sensitivity
    if not found:
        return (
            Text(
                "Not checked for this analysis: rerun with --sensitivity (Python: result.with_sensitivity()) to "
                "refit it under a panel of reasonable priors and see whether the decision changes."
            ),
        )
    blocks: list[Block] = [Text(SENSITIVITY_WHY), Decisions(tuple(found["sentences"]))]
    blocks.append(sensitivity_decisions_table(found))
    blocks.append(sensitivity_table(found))
    if figures:
        from abpool.plots.sensitivity import plot_sensitivity

        blocks.append(
            embed(
                plot_sensitivity(found),
                "Lifts under each prior",
                "lift with credible interval for each treatment row under each prior of the panel",
                "Each row's lift with its credible interval under every prior; zero dashed, the threshold of caring "
                "dotted. The hollow grey point is the no-pooling reference, shown but not counted.",
            )
        )
    seconds = sum(found["seconds"].values())
    blocks.append(
        Facts(
            "The panel",
            (
                *(
                    (entry["label"], entry["why"] if entry["prior"] is None else f"{entry['text']} — {entry['why']}")
                    for entry in found["panel"]
                ),
                ("time", f"{seconds:,.1f} s for the refits"),
            ),
        )
    )
    return tuple(blocks)


def classical_blocks(result: Result) -> tuple[Block, ...]:
    """The frequentist comparison side by side."""
    skipped = result.classical_skipped()
    if skipped:
        return (Text(f"Left out: {skipped}."),)
    table = classical_table(result)
    if table is None:
        return ()
    family = "pair" if not result.segmented else "segment"
    return (
        Text(
            f"For contrast, the classical view: a two-proportion test per {family} with p-values adjusted for the "
            "number of comparisons. The hierarchical model answers with one joint posterior instead."
        ),
        table,
    )


def unreliable_alert(result: Result) -> Alert | None:
    """The warning box of an unconverged fit, with what to do."""
    diag = result.diagnostics
    if diag.converged:
        return None
    advice = (
        "Refit with the proper prior (--prior lognormal) or collect more data."
        if diag.engine == "exact"
        else "Refit with more draws and tuning (--draws, --tune) and check again."
    )
    return Alert("This fit is unreliable — do not act on these numbers yet", (*diag.warnings, advice))


def diagnostic_blocks(result: Result, *, figures: bool = True) -> tuple[Block, ...]:
    """Convergence: a statement for independent draws; facts, a table and rank plots for MCMC."""
    diag = result.diagnostics
    blocks: list[Block] = []
    alert = unreliable_alert(result)
    if alert is not None:
        blocks.append(alert)
    if diag.engine == "exact":
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
    from abpool.plots import convergence_table, plot_convergence

    table = convergence_table(result)
    blocks += [
        Facts(
            "Sampler",
            (
                ("sampler", str(result.provenance()["inference_library"])),
                (
                    "chains × draws",
                    f"{diag.chains} × {diag.draws:,}"
                    + ("" if diag.tune is None else f" after {diag.tune:,} tuning steps"),
                ),
                ("divergent transitions", f"{diag.divergences}"),
                ("largest R-hat", fmt.number(diag.max_rhat, 4) + f" (want ≤ {RHAT_LIMIT})"),
                (
                    "smallest ESS (bulk / tail)",
                    f"{diag.min_ess_bulk:,.0f} / {diag.min_ess_tail:,.0f} (want ≥ {ess_needed(diag.chains)})",
                ),
                ("parameters checked", diag.checked_over()),
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
            "The quantities shown; the verdict above covers every parameter checked.",
        ),
    ]
    if figures:
        blocks.append(
            embed(
                plot_convergence(result),
                "Chains",
                "per-chain densities and rank plots",
                "Well-mixed chains overlap on the left and have flat rank histograms on the right.",
            )
        )
    return tuple(blocks)


def result_sections(
    result: Result,
    *,
    prefix: str = "",
    heading: str = "",
    figures: bool = True,
    parts: Collection[str] | None = None,
) -> tuple[Section, ...]:
    """Every section of a result's report.

    Parameters
    ----------
    result : Result
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
        raise InvalidArgumentError(f"parts must be among {', '.join(SECTION_PARTS)}, got {sorted(unknown)}")

    def keep(part: str) -> bool:
        return part in wanted

    sections: list[Section] = []
    if keep("recommendation"):
        sections.append(Section(f"{prefix}recommendation", f"{head}Recommendation", recommendation_blocks(result)))
    if keep("question"):
        sections.append(Section(f"{prefix}question", f"{head}The question and the data", question_blocks(result)))
    if keep("decisions"):
        sections.append(Section(f"{prefix}decisions", f"{head}Decisions", (Decisions(tuple(result.sentences())),)))
    if keep("estimates"):
        estimates: list[Block] = [estimates_table(result)]
        if not result.segmented:
            matrix = pairwise_table(result)
            if matrix is not None:
                estimates.append(matrix)
        estimates.append(population_table(result))
        sections.append(Section(f"{prefix}estimates", f"{head}Estimates", tuple(estimates)))
    if figures and keep("figures"):
        sections.append(Section(f"{prefix}figures", f"{head}Figures", figure_blocks(result)))
    if keep("prior"):
        sections.append(Section(f"{prefix}prior", f"{head}Prior", prior_blocks(result)))
    if keep("sensitivity"):
        sections.append(
            Section(f"{prefix}sensitivity", f"{head}{SENSITIVITY_TITLE}", sensitivity_blocks(result, figures=figures))
        )
    if keep("multiplicity"):
        sections.append(Section(f"{prefix}multiplicity", f"{head}Multiple comparisons", multiplicity_blocks(result)))
    classical = classical_blocks(result) if keep("classical") else ()
    if classical:
        sections.append(Section(f"{prefix}classical", f"{head}Classical comparison", classical))
    if keep("diagnostics"):
        sections.append(
            Section(f"{prefix}diagnostics", f"{head}Diagnostics", diagnostic_blocks(result, figures=figures))
        )
    return tuple(sections)


def provenance_items(result: Result) -> tuple[tuple[str, str], ...]:
    """Version, seed, settings and data: what is needed to reproduce the result."""
    provenance = result.provenance()
    return (
        ("abpool version", str(provenance["abpool_version"])),
        ("model", f"{result.model}: {result.description}"),
        ("sampled by", f"{provenance['inference_library']} {provenance['inference_library_version']}"),
        ("seed", str(result.seed)),
        ("fitted", result.created),
        ("data fingerprint", result.cells.fingerprint),
        ("reproduce", result.reproduce_command()),
    )


def experiment_heading(result: Result) -> str:
    """``"Experiment exp-01 — "`` when a batch read the result's data as one of many experiments, else ``""``.

    Examples
    --------
    >>> import abpool
    >>> experiment_heading(abpool.analyze_variants(successes=[3, 5], trials=[10, 10], seed=1))
    ''
    """
    origin = result.cells.origin
    return "" if origin is None or origin.experiment is None else f"Experiment {origin.experiment} — "


def result_report(result: Result, *, figures: bool = True) -> Report:
    """The report of one result."""
    names = fmt.names_list(list(result.segments if result.segmented else result.arms))
    title = f"Experiment by segment: {names}" if result.segmented else f"A/B/n test: {names}"
    title = experiment_heading(result) + title
    warnings = () if result.diagnostics.converged else tuple(result.diagnostics.warnings)
    return Report(
        title=title,
        subtitle=f"{result.description[:1].upper()}{result.description[1:]}; prior {result.prior.name}",
        sections=result_sections(result, figures=figures),
        provenance=provenance_items(result),
        warnings=warnings,
    )
