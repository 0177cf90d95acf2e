"""The article, end to end: its two variants scenarios fitted, explained in one report.

:func:`run_demo` fits the four-variant test twice — A with 100 trials, then A
with only 10 — plus the first scenario under a second, proper prior, and
:func:`demo_report` walks through the article's argument with the figures:
shrinkage depends on sample size, A's posterior against the grand rate, every
variant moving, pairwise probabilities from one posterior, and priors stated
in the open. Every number in the prose is read from the fits.

Examples
--------
>>> demo = run_demo(seed=1)
>>> list(demo.scenarios)
['A with 100 trials', 'A with 10 trials']
>>> demo.path is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from abpool import _format as fmt
from abpool import datasets, plots
from abpool._version import __version__
from abpool.report.blocks import Decisions, Report, Section, Table, Text
from abpool.report.figures import embed
from abpool.report.render import write_report
from abpool.report.sections import classical_blocks, result_sections
from abpool.segments import SegmentsResult, analyze_segments
from abpool.variants import VariantsResult, analyze_variants

DEFAULT_SEED = 2016
DEFAULT_OUT = Path("abpool-demo")
ALTERNATIVE_PRIOR = "lognormal"


@dataclass(frozen=True)
class Demo:
    """The demo's fits and, once written, where its report is.

    Attributes
    ----------
    scenarios : dict of str to VariantsResult
        The article's two scenarios under its own prior.
    alternative : VariantsResult
        The first scenario under the proper ``lognormal`` prior (the argument about priors).
    segments : SegmentsResult or None
        The article's Canada/China multilevel model on its ``make_dataframe`` data.
    path : Path or None
        The report written, if any.
    """

    scenarios: dict[str, VariantsResult]
    alternative: VariantsResult
    segments: SegmentsResult | None = None
    path: Path | None = None


def run_demo(*, seed: int = DEFAULT_SEED, out: str | Path | None = None, with_segments: bool = True) -> Demo:
    """Fit the article's scenarios and, when ``out`` is given, write ``out/report.html``.

    Parameters
    ----------
    seed : int
        Random seed of every fit.
    out : str or path, optional
        Directory for the report (created if needed).
    with_segments : bool
        Also fit the article's Canada/China multilevel model (MCMC: compiling
        it takes most of the demo's time).
    """
    scenarios = {
        label: analyze_variants(frame, seed=seed) for label, frame in datasets.article_variants_scenarios().items()
    }
    first_frame = datasets.article_variants()
    alternative = analyze_variants(first_frame, seed=seed, prior=ALTERNATIVE_PRIOR)
    segments = (
        analyze_segments(
            datasets.make_dataframe(100, list(datasets.ARTICLE_SUCCESSES)),
            segment="country",
            arm="treated",
            outcome="success",
            control="0",
            seed=seed,
        )
        if with_segments
        else None
    )
    demo = Demo(scenarios=scenarios, alternative=alternative, segments=segments)
    if out is None:
        return demo
    path = write_report(Path(out) / "report.html", demo_report(demo))
    return Demo(scenarios=scenarios, alternative=alternative, segments=segments, path=path)


def _row(result: VariantsResult, name: str) -> dict:
    summary = result.summary()
    return summary[summary["arm"] == name].iloc[0].to_dict()


def _intro(demo: Demo) -> Section:
    first, second = demo.scenarios.values()
    rows = []
    for label, res in demo.scenarios.items():
        trials, successes = res.counts()
        for name, n, y in zip(res.arms, trials, successes, strict=True):
            rows.append((label, name, f"{n:,}", f"{y:,}", fmt.rate(y / n)))
    return Section(
        "question",
        "The question",
        (
            Text(
                "Four variants, A, B, C and D, are tested; their observed success rates are 30%, 50%, 55% and 60%. "
                "The classical analysis tests every pair and then penalises the p-values for the number of tests "
                "(Bonferroni and friends). The hierarchical model instead assumes the four rates come from one "
                "common Beta distribution, so each variant borrows information from the others, and its estimate "
                "is pulled (shrunk) toward the grand rate as much as its sample size deserves."
            ),
            Text(
                "Two scenarios show how much sample size matters: in the first every variant has 100 trials; in "
                f"the second A has only 10. Grand rates: {fmt.rate(first.grand_rate())} and "
                f"{fmt.rate(second.grand_rate())}."
            ),
            Table(
                "The data",
                ("scenario", "variant", "trials", "successes", "observed rate"),
                tuple(rows),
                (False, False, True, True, True),
            ),
        ),
    )


def _shrinkage(demo: Demo) -> Section:
    first, second = demo.scenarios.values()
    a1, a2 = _row(first, "A"), _row(second, "A")
    text = (
        f"With {a1['trials']} trials, A's estimate moves from its observed {fmt.rate(a1['observed_rate'])} to "
        f"{fmt.rate(a1['rate'])} (pooling {fmt.fraction(a1['pooling'])}): A mostly speaks for itself. With "
        f"{a2['trials']} trials it moves from {fmt.rate(a2['observed_rate'])} to {fmt.rate(a2['rate'])} "
        f"(pooling {fmt.fraction(a2['pooling'])}), most of the way to the grand rate {fmt.rate(second.grand_rate())}: "
        "there is only so much to learn from 10 trials, so the model leans on the other variants."
    )
    return Section(
        "shrinkage",
        "Shrinkage depends on sample size",
        (
            Text(text),
            embed(
                plots.plot_shrinkage(demo.scenarios),
                "Observed rate → pooled estimate, both scenarios",
                "shrinkage plot of both scenarios",
                "Hollow: observed rate; filled: posterior median; arrows: the pull toward the grand rate (dashed). "
                "Marker area grows with trials.",
            ),
        ),
    )


def _posterior(demo: Demo) -> Section:
    first, second = demo.scenarios.values()
    a1, a2 = _row(first, "A"), _row(second, "A")
    text = (
        f"With 100 trials, A's posterior is centred at {fmt.rate(a1['rate'])}, a little above its observed 0.300 "
        f"and far from the grand rate {fmt.rate(first.grand_rate())}. With 10 trials its median is "
        f"{fmt.rate(a2['rate'])}, against a grand rate of {fmt.rate(second.grand_rate())}, and its "
        f"{first.ci:.0%} interval widens from {fmt.interval(a1['rate_ci_low'], a1['rate_ci_high'])} to "
        f"{fmt.interval(a2['rate_ci_low'], a2['rate_ci_high'])}: most of what was specific to A has been shrunk away."
    )
    return Section(
        "posterior",
        "A's posterior and the grand rate",
        (
            Text(text),
            embed(
                plots.plot_posterior(demo.scenarios, "A"),
                "Posterior of A's rate in both scenarios",
                "posterior density of A's rate with 100 and with 10 trials, grand rates dashed",
                "Solid: the posterior density of A's rate; dashed: each scenario's grand rate.",
            ),
        ),
    )


def _boxplots(demo: Demo) -> Section:
    (l1, first), (l2, _) = demo.scenarios.items()
    others = [name for name in first.arms if name != "A"]
    widths = {
        label: [_row(res, n)["rate_ci_high"] - _row(res, n)["rate_ci_low"] for n in others]
        for label, res in demo.scenarios.items()
    }
    listed = ", ".join(f"{n}: {w1:.3f} vs {w2:.3f}" for n, w1, w2 in zip(others, widths[l1], widths[l2], strict=True))
    if all(w1 > w2 for w1, w2 in zip(widths[l1], widths[l2], strict=True)):
        finding = (
            f"B, C and D have wider intervals when A has 100 trials than when it has 10 ({first.ci:.0%} widths, "
            f"{listed}). That looks odd but is not: with 10 trials the model can shrug A off; with 100 it must "
            "reconcile A's very different rate with theirs, all drawn from one population, and it does so by "
            "widening everyone's intervals."
        )
    else:
        finding = (
            f"The intervals of B, C and D change between the scenarios ({first.ci:.0%} widths with A at 100 vs 10 "
            f"trials: {listed}): every estimate depends on all the data."
        )
    return Section(
        "boxplots",
        "Every variant moves",
        (
            Text(finding),
            embed(
                plots.plot_boxplots(demo.scenarios),
                "Posterior rates of every variant, both scenarios",
                "boxplots of each variant's posterior rate in both scenarios",
                f"Boxes: the middle 50% of each posterior; whiskers: the {first.ci:.0%} interval.",
            ),
        ),
    )


def _comparisons(demo: Demo) -> Section:
    label, first = next(iter(demo.scenarios.items()))
    blocks = [
        Text(
            f"Because all rates come from one joint posterior ({label}), any comparison is a direct probability "
            "of the same model:"
        ),
        Decisions(tuple(first.sentences())),
        embed(
            plots.plot_prob_greater(first),
            f"P(row beats column), {label}",
            "heat map of the probability that each row variant beats each column variant",
            "Each cell is the posterior probability that the row's rate exceeds the column's.",
        ),
        *classical_blocks(first),
    ]
    return Section("comparisons", "Every comparison from one posterior", tuple(blocks))


def _priors(demo: Demo) -> Section:
    label, first = next(iter(demo.scenarios.items()))
    alt = demo.alternative
    rows = []
    for res in (first, alt):
        a, d = _row(res, "A"), _row(res, "D")
        rows.append(
            (
                str(res.prior),
                fmt.rate(a["rate"]),
                fmt.pct(d["prob_best"]),
                fmt.pct(res.prob_greater("C", "B")),
                fmt.pct(res.prob_greater("D", "B")),
            )
        )
    return Section(
        "priors",
        "The prior, in the open",
        (
            Text(
                "A prior is an assumption you can read, argue with, and change. Below, the first scenario is "
                f"fitted under the article's prior and under a proper, weakly informative alternative "
                f"(--prior {ALTERNATIVE_PRIOR}). If reasonable priors lead to similar answers, report them "
                "together; if they lead to very different ones, that is a signal to collect more data."
            ),
            Table(
                f"The same data ({label}) under two priors",
                ("prior", "rate of A (median)", "P(D best)", "P(C > B)", "P(D > B)"),
                tuple(rows),
                (False, True, True, True, True),
            ),
        ),
    )


def segments_sections(demo: Demo) -> tuple[Section, ...]:
    """The article's second half: Canada and China, each with its own control rate and effect."""
    result = demo.segments
    if result is None:
        return ()
    summary = result.summary()
    treated = summary[~summary["is_control"]].set_index("segment")
    control = summary[summary["is_control"]].set_index("segment")
    canada, china = treated.loc["Canada"], treated.loc["China"]
    intro = Section(
        "multilevel",
        "Now let's get multilevel: Canada and China",
        (
            Text(
                "The article's second experiment has users from two countries. Canada converts at "
                f"{fmt.rate(control.loc['Canada', 'observed_rate'])} without the feature and "
                f"{fmt.rate(canada.observed_rate)} with it; China at "
                f"{fmt.rate(control.loc['China', 'observed_rate'])} and {fmt.rate(china.observed_rate)}, "
                f"{int(canada.trials):,} users per cell. Separate regressions per country would bring back the "
                "multiple-testing problem; one pooled regression would hide the countries. The varying-intercept, "
                "varying-slope model sits between: each country has its own control rate and treatment effect, "
                "and both are drawn from common Normal distributions."
            ),
            Decisions(tuple(result.sentences())),
            Text(
                f"The article printed 87.3% for China from a short run of the centred model, which diverges on this "
                f"data; this fit ({result.diagnostics.chains} chains × {result.diagnostics.draws:,} draws, "
                f"{result.diagnostics.divergences} divergences, {result.parameterisation} parameterisation) gives "
                f"{fmt.pct(china.prob_beats_control)}."
            ),
        ),
    )
    return (intro, *result_sections(result, prefix="seg-", heading="Canada and China")[2:])


def demo_report(demo: Demo) -> Report:
    """The demo's report: the article's argument, then each scenario in full."""
    sections = [_intro(demo), _shrinkage(demo), _posterior(demo), _boxplots(demo), _comparisons(demo), _priors(demo)]
    seed = next(iter(demo.scenarios.values())).seed
    sections.extend(segments_sections(demo))
    # The argument above already shows scenario 1's decisions, prior and classical tests; the details add the rest.
    details = [
        ("question", "estimates", "diagnostics"),
        ("question", "decisions", "estimates", "classical", "diagnostics"),
    ]
    for k, (label, res) in enumerate(demo.scenarios.items(), start=1):
        parts = details[min(k, len(details)) - 1]
        heading = f"Scenario {k} ({label})"
        sections.extend(result_sections(res, prefix=f"s{k}-", heading=heading, figures=False, parts=parts))
    provenance = [
        ("abpool version", __version__),
        ("seed", str(seed)),
        ("engine", ", ".join(sorted({res.engine for res in demo.scenarios.values()}))),
        ("priors", f"{next(iter(demo.scenarios.values())).prior}; {demo.alternative.prior}"),
    ]
    provenance += [(f"fingerprint: {label}", res.cells.fingerprint) for label, res in demo.scenarios.items()]
    provenance += [("fitted", next(iter(demo.scenarios.values())).created), ("reproduce", f"abpool demo --seed {seed}")]
    fits = {**demo.scenarios, **({"Canada and China": demo.segments} if demo.segments is not None else {})}
    warnings = tuple(
        f"{label}: {w}"
        for label, res in fits.items()
        if not res.diagnostics.converged
        for w in res.diagnostics.warnings
    )
    return Report(
        title="Thinking hierarchically: the article's A/B/n test, end to end",
        subtitle="Partial pooling instead of p-value corrections — hierarchical Beta-Binomial model",
        sections=tuple(sections),
        provenance=tuple(provenance),
        warnings=warnings,
    )
