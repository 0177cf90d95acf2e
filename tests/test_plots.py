"""Every figure draws what it claims, from real fits: the right number of lines, boxes, markers and cells."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, PathPatch

import abpool
from abpool import datasets, plots


@pytest.fixture(scope="module")
def scenarios() -> dict[str, abpool.VariantsResult]:
    return {
        label: abpool.analyze_variants(frame, seed=11) for label, frame in datasets.article_variants_scenarios().items()
    }


def test_posterior_overlays_scenarios_with_grand_rates(scenarios) -> None:
    fig = plots.plot_posterior(scenarios, "A")
    (ax,) = fig.axes
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(solid) == 2 and len(dashed) == 2
    assert [line.get_xdata()[0] for line in dashed] == pytest.approx([r.grand_rate() for r in scenarios.values()])
    for line, res in zip(solid, scenarios.values(), strict=True):
        x, density = line.get_xdata(), line.get_ydata()
        # A density over the plotted range (which holds 99.9% of the draws) integrates to ~1 …
        assert np.trapezoid(density, x) == pytest.approx(1.0, abs=0.03)
        # … and its mean is the posterior mean of A.
        assert np.trapezoid(x * density, x) == pytest.approx(res.summary()["rate_mean"].iloc[0], abs=0.01)


def test_posterior_of_one_result_draws_every_variant(scenarios) -> None:
    res = scenarios["A with 100 trials"]
    ax = plots.plot_posterior(res).axes[0]
    assert sum(line.get_linestyle() == "-" for line in ax.lines) == 4
    assert sum(line.get_linestyle() == "--" for line in ax.lines) == 1


def test_boxplots_one_box_per_variant_and_scenario(scenarios) -> None:
    ax = plots.plot_boxplots(scenarios).axes[0]
    boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
    assert len(boxes) == 4 * 2
    # Medians are drawn at the draws' medians: first box is A in the first scenario.
    first = scenarios["A with 100 trials"]
    medians = [line for line in ax.lines if line.get_label() == "_median"]
    assert len(medians) == 8
    assert medians[0].get_ydata()[0] == pytest.approx(np.median(first.rate_draws()[:, 0]))


def test_shrinkage_panel_per_scenario_with_arrows_and_sized_markers(scenarios) -> None:
    fig = plots.plot_shrinkage(scenarios)
    assert len(fig.axes) == 2
    for ax, res in zip(fig.axes, scenarios.values(), strict=True):
        assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == 4
        observed, pooled = [c for c in ax.collections if isinstance(c, PathCollection)]
        summary = res.summary()
        # Rows run top to bottom, so the first variant sits at the highest y.
        assert observed.get_offsets()[:, 0].tolist() == pytest.approx(summary["observed_rate"].tolist())
        assert pooled.get_offsets()[:, 0].tolist() == pytest.approx(summary["rate"].tolist())
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and dashed[0].get_xdata()[0] == pytest.approx(res.grand_rate())
    small = fig.axes[1].collections[1].get_sizes()
    assert small[0] < small[1]  # A has 10 trials in the second scenario, B has 100


def test_prob_greater_heat_map_cells(scenarios) -> None:
    res = scenarios["A with 100 trials"]
    ax = plots.plot_prob_greater(res).axes[0]
    (image,) = ax.images
    assert len(ax.texts) == 4 * 3
    values = image.get_array()
    expected = res.prob_greater_matrix().to_numpy()
    assert values.mask.diagonal().all()
    assert np.allclose(values.filled(0.0), expected)


def test_forest_draws_each_treatment_against_the_control(scenarios) -> None:
    res = scenarios["A with 100 trials"]
    fig = plots.plot_forest(res)
    left, right = fig.axes
    assert len(left.containers) == 2 and len(right.containers) == 1
    treated = res.summary().iloc[1:]
    for container in (*left.containers, *right.containers):
        assert len(container.lines[0].get_xdata()) == 3  # B, C and D against A
    # Lifts in percentage points, as in the tables.
    assert right.containers[0].lines[0].get_xdata().tolist() == pytest.approx((100 * treated["lift"]).tolist())
    control_rate = res.summary().loc[0, "rate"]
    assert left.containers[0].lines[0].get_xdata().tolist() == pytest.approx([control_rate] * 3)
    assert len(right.texts) == 3 and right.texts[0].get_text().startswith("P(beats control)")


def test_user_text_is_drawn_literally() -> None:
    # "$" would start matplotlib's mathtext and a lone one fails to parse: names are drawn as given.
    res = abpool.analyze_variants(successes=[3, 5], trials=[10, 10], names=["$5 off", "50% $ale"], seed=1)
    for figure in (res.plot_posterior(), res.plot_boxplots(), res.plot_shrinkage(), res.plot_prob_greater()):
        figure.savefig(io.BytesIO(), format="svg")
    labels = [t.get_text() for t in res.plot_boxplots().axes[0].get_xticklabels()]
    assert labels == [r"\$5 off", r"50% \$ale"]


def test_convergence_rows_chains_and_table(mcmc_fit) -> None:
    fig = plots.plot_convergence(mcmc_fit)
    axes = np.array(fig.axes[: 2 * 6]).reshape(6, 2)
    for density_ax, rank_ax in axes:
        assert len(density_ax.lines) == 2  # one density per chain
        assert len(rank_ax.patches) > 0 and len(rank_ax.patches) % 2 == 0  # rank bars of both chains
        assert "R-hat" in rank_ax.get_title(loc="left")
    table = plots.convergence_table(mcmc_fit)
    assert list(table.index) == ["population_mean", "log_concentration", "rate[A]", "rate[B]", "rate[C]", "rate[D]"]
    assert set(mcmc_fit.diagnostics.checked) == {"logit_mean", "log_concentration"}
    assert (table["r_hat"] > 0.9).all() and (table["ess_bulk"] > 0).all()


def test_convergence_refuses_independent_draws(scenarios) -> None:
    with pytest.raises(abpool.InvalidArgumentError, match="independent draws"):
        plots.plot_convergence(scenarios["A with 10 trials"])


def test_result_methods_return_figures(scenarios) -> None:
    res = scenarios["A with 10 trials"]
    figures = (
        res.plot_posterior("A"),
        res.plot_boxplots(),
        res.plot_shrinkage(),
        res.plot_prob_greater(),
        res.plot_forest(),
    )
    for figure in figures:
        assert isinstance(figure, Figure)


def test_bad_input_is_one_clear_error(scenarios) -> None:
    with pytest.raises(abpool.InvalidArgumentError, match="result 'x' must be an abpool result"):
        plots.plot_boxplots({"x": 3})
    with pytest.raises(abpool.InvalidArgumentError, match="arm must be one of A, B, C, D, got 'Z'"):
        plots.plot_posterior(scenarios, "Z")
    with pytest.raises(abpool.InvalidArgumentError, match="segment must be None"):
        plots.plot_boxplots(scenarios, segment="China")


def test_import_does_not_load_plotting_or_templates() -> None:
    code = "import sys, abpool; print(any(m in sys.modules for m in ('matplotlib', 'jinja2', 'arviz')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
