"""Terminal table of the classical comparisons beside the posterior probabilities."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from abpool.results import VariantsResult

# Beyond this many pairs the table stops being readable; the JSON keeps them all.
MAX_PAIRS_IN_TABLE = 66

ClassicalOpt = Annotated[
    bool,
    typer.Option(
        "--classical", help="Also print two-proportion tests with Bonferroni/Holm/BH-adjusted p-values per pair."
    ),
]


def _p(value: float) -> str:
    if value != value:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _prob(value: float) -> str:
    # Same convention as the P(row beats column) matrix: never print a hard 0% or 100%.
    if value > 0.999:
        return ">99.9%"
    if value < 0.001:
        return "<0.1%"
    return f"{value:.1%}"


def render_classical(result: VariantsResult, console: Console) -> None:
    """Print every pair's two-proportion test, adjusted p-values and ``P(i > j)``."""
    table = result.classical()
    shown = table.head(MAX_PAIRS_IN_TABLE)
    out = Table(
        title="Classical tests (two-sided; adjusted over all pairs) beside P(i > j)",
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for column in ("i", "j", "rate i", "rate j", "diff", "test", "p", "Bonferroni", "Holm", "BH", "P(i > j)"):
        out.add_column(column, justify="left" if column in ("i", "j", "test") else "right", no_wrap=True)
    for row in shown.itertuples(index=False):
        out.add_row(
            row.arm_i,
            row.arm_j,
            f"{row.rate_i:.3f}",
            f"{row.rate_j:.3f}",
            f"{row.difference:+.3f}",
            row.test,
            _p(row.p_value),
            _p(row.p_bonferroni),
            _p(row.p_holm),
            _p(row.p_bh),
            _prob(row.prob_greater),
        )
    console.print(out)
    if len(table) > len(shown):
        console.print(f"({len(table) - len(shown):,} more pairs in --json output)")
