"""``abpool simulate``: a calibration study of the Bayesian and classical decision rules."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from abpool.cli._app import JsonOpt, app, fail, stderr, stdout
from abpool.errors import AbpoolError, InvalidArgumentError


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
        typer.Option("--arms", help="Arms per experiment; repeat or comma-separate for several studies [default: 4]."),
    ] = None,
    trials: Annotated[int, typer.Option("--trials", help="Users (trials) per arm.")] = 100,
    base_rate: Annotated[float, typer.Option("--base-rate", help="True rate of every arm in an A/A study.")] = 0.5,
    experiments: Annotated[int, typer.Option("--experiments", help="Simulated experiments per study.")] = 1000,
    seed: Annotated[int | None, typer.Option("--seed", help="Study seed [default: random, and reported].")] = None,
    effect: Annotated[
        float | None,
        typer.Option("--effect", help="True lift of the last --effect-arms arms over the base rate [default: A/A]."),
    ] = None,
    effect_arms: Annotated[int, typer.Option("--effect-arms", help="How many (last) arms carry the effect.")] = 1,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold", help="Bayesian rule: claim i > j when P(i > j) ≥ this; repeatable [default: 0.95]."
        ),
    ] = None,
    loss_bound: Annotated[
        float | None,
        typer.Option("--loss-bound", help="Also apply the rule with expected loss of the claim below this bound."),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Classical rules: claim when adjusted p < alpha.")] = 0.05,
    prior: Annotated[str, typer.Option("--prior", help="Hyperprior of the Bayesian fits: bda or lognormal.")] = "bda",
    draws: Annotated[int, typer.Option("--draws", help="Posterior draws per experiment (exact engine).")] = 4000,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes [default: all cores].")] = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for calibration.csv, calibration.json, calibration.png.")
    ] = None,
) -> None:
    """Calibration study: how often each rule declares a winner that is not there, and finds a real one.

    Simulates experiments from a declared truth (A/A, or the last arm(s) truly better by --effect),
    then applies the Bayesian rule (P(i > j) ≥ threshold) and two-proportion tests with Bonferroni,
    Holm, Benjamini-Hochberg or no correction to every pair. Reports family-wise error, false
    discovery rate, power and wrong-sign rate with 95% Monte Carlo intervals.

    Example: abpool simulate --arms 2,4,8,16 --trials 100 --base-rate 0.5 --experiments 1000 --seed 1
    """
    from abpool.simulate import RuleSettings, VariantsDesign, available_workers, run_studies
    from abpool.simulate_output import study_payload, write_outputs

    try:
        arm_counts = _split(arms, ["4"], "arms", int)
        thresholds = _split(threshold, ["0.95"], "threshold", float)
        seed = secrets.randbits(31) if seed is None else seed
        if seed < 0:
            raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
        if experiments < 1:
            raise InvalidArgumentError(f"experiments must be an integer of at least 1, got {experiments!r}")
        designs = [
            VariantsDesign(
                arms=count, trials=trials, base_rate=base_rate, effect=effect or 0.0, effect_arms=effect_arms
            )
            for count in dict.fromkeys(arm_counts)
        ]
        settings = RuleSettings(
            thresholds=tuple(thresholds), loss_bound=loss_bound, alpha=alpha, prior=prior, draws=draws
        )
        n_workers = available_workers() if workers is None else workers
        if n_workers < 1:
            raise InvalidArgumentError(f"workers must be an integer of at least 1, got {n_workers!r}")
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
    settings = payload["settings"]
    effect = settings.get("effect")
    truth = "A/A (all rates equal)" if not effect else f"last {settings['effect_arms']} arm(s) {effect:+g}"
    table = Table(
        title=(
            f"Calibration: {settings['experiments']:,} experiments per study, {settings.get('trials')} trials per arm, "
            f"base rate {settings.get('base_rate')}, truth: {truth}"
        ),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for column in ("arms", "rule", "family-wise error", "false discovery rate", "power", "wrong sign", "claims/exp"):
        table.add_column(column, justify="left" if column == "rule" else "right", no_wrap=True)
    for row in payload["rules"]:
        table.add_row(
            str(row["arms"]),
            row["rule"],
            _interval(row["family_wise_error"], row["family_wise_error_ci"]),
            _interval(row["false_discovery_rate"], row["false_discovery_rate_ci"]),
            _interval(row["power"], row["power_ci"]),
            _interval(row["wrong_sign_rate"], row["wrong_sign_rate_ci"]),
            f"{row['mean_claims']:.2f}",
        )
    stdout.print(table)
    stdout.print(f"intervals: {settings['monte_carlo_interval']} (Monte Carlo error of the study)")
    stdout.print(
        f"rules: Bayesian P(i > j) ≥ {', '.join(f'{t:g}' for t in settings['thresholds'])}"
        + (f" (also with expected loss < {settings['loss_bound']:g})" if settings["loss_bound"] is not None else "")
        + f"; classical two-sided tests, adjusted p < {settings['alpha']:g}; prior {settings['prior']}"
    )
    problems = [s for s in payload["studies"] if s["refused_fits"] or s["fits_with_warnings"]]
    for study in problems:
        stdout.print(
            f"[bold red]note:[/bold red] {study['arms']} arms: {study['refused_fits']} fits refused "
            f"(improper posterior: the Bayesian rules claimed nothing), {study['fits_with_warnings']} fits warned"
        )
    stdout.print(f"seed {settings['seed']}")
