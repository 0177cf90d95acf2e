"""``abpool simulate``: a calibration study of the Bayesian and classical decision rules.

Two forms: ``--arms`` (A/B/n tests, the variants model) and ``--segments``
(treatment against control within each segment, the segments model).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from abpool._validation import check_int, check_seed
from abpool.cli._app import JsonOpt, app, fail, stderr, stdout
from abpool.cli._render import print_table
from abpool.errors import AbpoolError, InvalidArgumentError
from abpool.report.blocks import Table


def _split(values: list[str] | None, default: list[str], name: str, convert: type) -> list:
    """Parse a repeatable option that also accepts comma-separated values (``--arms 2,4,8``)."""
    items = [part.strip() for value in (values or default) for part in str(value).split(",") if part.strip()]
    parsed = []
    for item in items:
        try:
            parsed.append(convert(item))
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise InvalidArgumentError(f"{name} must be {kind}, got {item!r}") from None
    if not parsed:
        raise InvalidArgumentError(f"{name} needs at least one value")
    return parsed


def _interval(value: float | None, ci: list[float] | None) -> str:
    if value is None or ci is None:
        return "—"
    return f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"


@app.command()
def simulate(
    arms: Annotated[
        list[str] | None,
        typer.Option(
            "--arms",
            metavar="COUNTS",
            help="Arms per experiment; repeat or comma-separate for several studies [default: 4].",
        ),
    ] = None,
    segments: Annotated[
        list[str] | None,
        typer.Option(
            "--segments",
            metavar="COUNTS",
            help="Segments form: segments per experiment, each with a control and a treatment cell; "
            "repeat or comma-separate for several studies.",
        ),
    ] = None,
    trials: Annotated[
        int, typer.Option("--trials", metavar="N", help="Users (trials) per arm, or per cell with --segments.")
    ] = 100,
    base_rate: Annotated[
        float,
        typer.Option(
            "--base-rate", metavar="RATE", help="True rate of every arm in an A/A study (segments: typical control)."
        ),
    ] = 0.5,
    experiments: Annotated[
        int, typer.Option("--experiments", metavar="N", help="Simulated experiments per study.")
    ] = 1000,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Study seed [default: random, and reported].")
    ] = None,
    effect: Annotated[
        float | None,
        typer.Option(
            "--effect",
            metavar="LIFT",
            help="True lift of the last --effect-arms arms over the base rate; with --segments, the mean "
            "treatment effect on the log-odds scale [default: A/A].",
        ),
    ] = None,
    effect_arms: Annotated[
        int | None,
        typer.Option("--effect-arms", metavar="N", help="How many (last) arms carry the effect [default: 1]."),
    ] = None,
    effect_spread: Annotated[
        float | None,
        typer.Option(
            "--effect-spread",
            metavar="SD",
            help="Segments: sd of the segments' treatment effects, log-odds [default: 0].",
        ),
    ] = None,
    base_rate_spread: Annotated[
        float | None,
        typer.Option(
            "--base-rate-spread",
            metavar="SD",
            help="Segments: sd of the segments' control log-odds around the base rate [0.2].",
        ),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            metavar="P",
            help="Bayesian rule: claim i > j when P(i > j) ≥ this; repeatable [default: 0.95].",
        ),
    ] = None,
    loss_bound: Annotated[
        float | None,
        typer.Option(
            "--loss-bound", metavar="LOSS", help="Also apply the rule with expected loss of the claim below this bound."
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", metavar="ALPHA", help="Classical rules: claim when adjusted p < alpha.")
    ] = 0.05,
    prior: Annotated[
        str | None,
        typer.Option(
            "--prior",
            metavar="NAME",
            help="Prior of the Bayesian fits: bda or lognormal [bda]; with --segments article, flat or "
            "conservative [article].",
        ),
    ] = None,
    draws: Annotated[
        int | None,
        typer.Option(
            "--draws",
            metavar="N",
            help="Posterior draws per experiment [4000: exact engine, or 4 MCMC chains with --segments].",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", metavar="N", help="Worker processes [default: all cores]; not with --segments (one process)."
        ),
    ] = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Directory for calibration.csv, calibration.json, calibration.png."),
    ] = None,
) -> None:
    """Calibration study: how often each rule declares a winner that is not there, and finds a real one.

    Simulates experiments from a declared truth (A/A, or the last arm(s) truly better by --effect),
    then applies the Bayesian rule (P(i > j) ≥ threshold) and two-proportion tests with Bonferroni,
    Holm, Benjamini-Hochberg or no correction to every pair. Reports family-wise error, false
    discovery rate, power and wrong-sign rate with 95% Monte Carlo intervals.

    With --segments: each experiment has that many segments × (control, treatment); segment control
    log-odds ~ Normal(logit(base rate), --base-rate-spread), treatment effects ~ Normal(--effect,
    --effect-spread) on the log-odds scale (both 0: A/A). The Bayesian rule fits the segments model
    (MCMC, one compiled model for the whole study); the classical rules test treatment against
    control in every segment, adjusted across segments.

    Example: abpool simulate --arms 2,4,8,16 --trials 100 --base-rate 0.5 --experiments 1000 --seed 1

    Example: abpool simulate --segments 8 --trials 1000 --base-rate 0.1 --effect-spread 0.2 --experiments 200 --seed 1
    """
    from abpool.calibration import (
        RuleSettings,
        SegmentsDesign,
        VariantsDesign,
        run_studies,
        study_payload,
        write_outputs,
    )
    from abpool.calibration.study import available_workers

    try:
        thresholds = _split(threshold, ["0.95"], "threshold", float)
        seed = check_seed(seed)
        check_int(experiments, "experiments", minimum=1)
        designs: list[VariantsDesign] | list[SegmentsDesign]
        if segments is not None:
            given = {"--arms": arms, "--effect-arms": effect_arms, "--workers": workers}
            for name, value in given.items():
                if value is not None:
                    raise InvalidArgumentError(
                        f"{name} does not apply to a segments study (--segments); leave it out"
                        + (
                            ": segments fits run in one process, the sampler uses every core"
                            if name == "--workers"
                            else ""
                        )
                    )
            designs = [
                SegmentsDesign(
                    segments=count,
                    trials=trials,
                    base_rate=base_rate,
                    effect=effect or 0.0,
                    effect_spread=effect_spread or 0.0,
                    **({} if base_rate_spread is None else {"base_rate_spread": base_rate_spread}),
                )
                for count in dict.fromkeys(_split(segments, [], "segments", int))
            ]
            n_workers = 1
        else:
            for name, value in {"--effect-spread": effect_spread, "--base-rate-spread": base_rate_spread}.items():
                if value is not None:
                    raise InvalidArgumentError(f"{name} applies only to a segments study; add --segments S")
            designs = [
                VariantsDesign(
                    arms=count,
                    trials=trials,
                    base_rate=base_rate,
                    effect=effect or 0.0,
                    effect_arms=1 if effect_arms is None else effect_arms,
                )
                for count in dict.fromkeys(_split(arms, ["4"], "arms", int))
            ]
            n_workers = available_workers() if workers is None else workers
        settings = RuleSettings(
            thresholds=tuple(thresholds),
            loss_bound=loss_bound,
            alpha=alpha,
            prior=prior,
            draws=draws,
            model=designs[0].kind,
        )
        check_int(n_workers, "workers", minimum=1)
        if out is not None:
            # Checked before the study runs, so a bad --out does not waste minutes of simulation.
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidArgumentError(
                    f"cannot write the study to {out}: {exc.strerror or exc}; choose another --out"
                ) from None
    except AbpoolError as exc:
        fail(exc)

    start = time.perf_counter()
    total = experiments * len(designs)
    if as_json:
        results = run_studies(designs, settings, experiments=experiments, seed=seed, workers=n_workers)
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=stderr, transient=True) as bar:
            task = bar.add_task("simulate", total=total)
            results = run_studies(
                designs,
                settings,
                experiments=experiments,
                seed=seed,
                workers=n_workers,
                progress=lambda done: bar.advance(task, done),
            )
    payload = study_payload(results, workers=n_workers, elapsed=time.perf_counter() - start)
    written = []
    if out is not None:
        try:
            written = write_outputs(results, out, payload)
        except OSError as exc:
            fail(InvalidArgumentError(f"cannot write the study to {out}: {exc.strerror or exc}; choose another --out"))
    if as_json:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    _render(payload)
    if written:
        stdout.print("written: " + ", ".join(str(p) for p in written))


def _render(payload: dict) -> None:
    from abpool.calibration.output import truth_text

    settings = payload["settings"]
    size = "segments" if settings.get("model") == "segments" else "arms"
    cell = "cell" if size == "segments" else "arm"
    truth = truth_text(settings)
    if truth == "A/A":
        truth = "A/A (all rates equal)" if size == "arms" else "A/A (treatment = control in every segment)"
    elif size == "arms":
        truth = f"last {settings['effect_arms']} arm(s) {settings['effect']:+g}"
    title = (
        f"Calibration: {settings['experiments']:,} experiments per study, {settings.get('trials')} trials per "
        f"{cell}, base rate {settings.get('base_rate')}, truth: {truth}"
    )
    headers = (size, "rule", "family-wise\nerror", "false\ndiscovery rate", "power", "wrong sign", "claims\nper exp.")
    rows = tuple(
        (
            str(row[size]),
            row["rule"],
            _interval(row["family_wise_error"], row["family_wise_error_ci"]),
            _interval(row["false_discovery_rate"], row["false_discovery_rate_ci"]),
            _interval(row["power"], row["power_ci"]),
            _interval(row["wrong_sign_rate"], row["wrong_sign_rate_ci"]),
            f"{row['mean_claims']:.2f}",
        )
        for row in payload["rules"]
    )
    print_table(Table(title, headers, rows, (False, False, True, True, True, True, True)), stdout)
    stdout.print(f"intervals: {settings['monte_carlo_interval']} (Monte Carlo error of the study)")
    stdout.print(
        f"rules: Bayesian P(i > j) ≥ {', '.join(f'{t:g}' for t in settings['thresholds'])}"
        + (f" (also with expected loss < {settings['loss_bound']:g})" if settings["loss_bound"] is not None else "")
        + f"; classical two-sided tests, adjusted p < {settings['alpha']:g}; prior {settings['prior']}"
    )
    if size == "segments":
        stdout.print(
            f"fits: {settings['engine']}, {settings['chains']} chains, {settings['draws']} draws in all, "
            f"{settings.get('parameterisation', 'one fixed')} parameterisation for every experiment of a study"
        )
    problems = [s for s in payload["studies"] if s["refused_fits"] or s["fits_with_warnings"]]
    for study in problems:
        stdout.print(
            f"[bold red]note:[/bold red] {study[size]} {size}: {study['refused_fits']} fits refused "
            f"(the Bayesian rules claimed nothing), {study['fits_with_warnings']} fits failed a convergence "
            "check (their draws were still used)"
        )
    stdout.print(f"seed {settings['seed']}")
