"""``abpool demo``: the article's scenarios end to end, with a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from abpool import _format as fmt
from abpool.cli._app import JsonOpt, app, fail, stdout
from abpool.cli._render import render_result
from abpool.demo import DEFAULT_OUT, DEFAULT_SEED, run_demo
from abpool.errors import AbpoolError

DemoSeedOpt = Annotated[int, typer.Option("--seed", metavar="N", help="Random seed of every fit.")]
DemoOutOpt = Annotated[Path, typer.Option("--out", metavar="DIR", help="Directory for report.html.")]


@app.command()
def demo(seed: DemoSeedOpt = DEFAULT_SEED, out: DemoOutOpt = DEFAULT_OUT, as_json: JsonOpt = False) -> None:
    """Run the article end to end: two variants scenarios (A with 100 trials, then 10), Canada/China, a report.

    With 100 trials A keeps most of its own estimate; with 10 it is pulled most of
    the way to the grand rate. The report (default ./abpool-demo/report.html)
    walks through the argument with figures.

    Example: abpool demo --out demo-report
    """
    try:
        result = run_demo(seed=seed, out=out)
    except AbpoolError as exc:
        fail(exc)
    except OSError as exc:
        fail(AbpoolError(f"cannot write the report to '{out}' ({exc.strerror or exc}); choose another --out"))
    if as_json:
        payload = {label: res.to_dict() for label, res in result.scenarios.items()}
        if result.segments is not None:
            payload["Canada and China"] = result.segments.to_dict()
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    for label, res in result.scenarios.items():
        render_result(res, stdout, title=f"Scenario: {label}")
        stdout.print()
    first, second = result.scenarios.values()
    a1, a2 = first.summary().iloc[0], second.summary().iloc[0]
    stdout.print(
        f"Shrinkage of A: observed {fmt.rate(a1.observed_rate)} → posterior median {fmt.rate(a1.rate)} with "
        f"{a1.trials} trials (pooling {fmt.fraction(a1.pooling)}); observed {fmt.rate(a2.observed_rate)} → "
        f"{fmt.rate(a2.rate)} with {a2.trials} trials (pooling {fmt.fraction(a2.pooling)}). Grand rates: "
        f"{fmt.rate(first.grand_rate())} and {fmt.rate(second.grand_rate())}.",
        markup=False,
    )
    if result.segments is not None:
        stdout.print()
        render_result(result.segments, stdout, title="Canada and China (varying-intercept, varying-slope model)")
    print(fmt.display(f"report: {result.path}"))
