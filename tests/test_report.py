"""The HTML report: its content, a real browser's view of it, and re-rendering from saved results."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

import abpool
from abpool.demo import run_demo, segments_sections
from abpool.report import render_fragment, render_report
from chromium import find_chromium, inspect_page

ABPOOL = [sys.executable, "-m", "abpool"]
TIMESTAMP = re.compile(r'<time class="rendered-at"[^>]*>[^<]*</time>')
# Any attribute or CSS reference that would make the browser fetch something.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//|ftp:)|url\(|@import|<link\b|<script\b""", re.I)


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*ABPOOL, *map(str, args)], capture_output=True, text=True, timeout=300)


def without_timestamps(html: str) -> str:
    return TIMESTAMP.sub("", html)


@pytest.fixture(scope="module")
def fit() -> abpool.VariantsResult:
    return abpool.analyze_variants(successes=[30, 50, 55, 60], trials=[100] * 4, seed=2016)


@pytest.fixture(scope="module")
def html(fit) -> str:
    return render_report(fit)


def test_report_states_question_data_decisions_prior_and_provenance(fit, html) -> None:
    summary = fit.summary()
    best = summary.loc[summary["prob_best"].idxmax()]
    assert f"{best.arm} is the best variant with probability {best.prob_best:.1%}." in html
    p = fit.prob_greater("D", "C")
    assert f"There is a {p:.1%} chance D beats C." in html
    assert fit.cells.fingerprint in html
    assert "bda: p(a, b) ∝ (a + b)^(-5/2)" in html
    assert f"--seed {fit.seed}" in html and abpool.__version__ in html
    # The point estimates in the HTML are the ones the terminal prints: posterior medians, one formatter.
    for row in summary.itertuples():
        assert f"{row.rate:.3f} ({row.rate_ci_low:.3f} – {row.rate_ci_high:.3f})" in html
    assert "Classical comparison" in html and "p Bonferroni" in html
    assert 'class="alert"' not in html  # a converged fit raises no alarm
    assert html.count("<img ") == 4


def test_report_is_self_contained(html) -> None:
    assert EXTERNAL.search(html) is None
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/svg+xml;base64,") for s in sources)
    assert "@media print" in html


def test_external_reference_would_be_caught() -> None:
    # The self-containment check above can fail: it recognises every form it guards against.
    for bad in ('<img src="https://x/y.png">', "<link rel=stylesheet href=a.css>", "background: url(a.png)"):
        assert EXTERNAL.search(bad)


def test_unreliable_fit_gets_a_warning_box(fit) -> None:
    problem = "R-hat 1.200 > 1.01: chains disagree"
    diagnostics = dataclasses.replace(fit.diagnostics, converged=False, warnings=[problem])
    html = render_report(dataclasses.replace(fit, diagnostics=diagnostics))
    assert html.count('class="alert"') == 2  # at the top and in the diagnostics
    assert "do not act on these numbers" in html and escape(problem) in html


def test_mcmc_report_shows_convergence(mcmc_fit) -> None:
    html = render_report(mcmc_fit)
    assert "Convergence by quantity" in html and "rate[D]" in html
    assert html.count("<img ") == 5  # the four figures and the chains


def test_notebook_repr_is_a_fragment_without_figures(fit) -> None:
    fragment = fit._repr_html_()
    assert fragment == render_fragment(fit)
    assert fragment.startswith('<div class="abpool-result">') and "<html" not in fragment
    assert "<table>" in fragment and "<img" not in fragment
    assert "is the best variant" in fragment


def test_save_load_round_trip_gives_the_same_report(tmp_path, mcmc_fit) -> None:
    for k, result in enumerate(
        (
            abpool.analyze_variants(
                successes=[3, 50, 60], trials=[10, 100, 100], seed=9, rope=0.02, prior="lognormal", control="B"
            ),
            mcmc_fit,
        )
    ):
        directory = result.save(tmp_path / f"run{k}")
        back = abpool.load(directory)
        assert back.prior == result.prior and back.diagnostics == result.diagnostics
        assert back.summary().equals(result.summary())
        original = (directory / "report.html").read_text(encoding="utf-8")
        assert without_timestamps(render_report(back)) == without_timestamps(original)


def test_cli_report_rerenders_identically(tmp_path, article_cells_csv) -> None:
    out = tmp_path / "run"
    proc = run("variants", article_cells_csv, "--seed", "8", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout
    original = (out / "report.html").read_text(encoding="utf-8")
    (out / "report.html").unlink()
    proc = run("report", out)
    assert proc.returncode == 0, proc.stderr
    again = (out / "report.html").read_text(encoding="utf-8")
    assert TIMESTAMP.search(again) and without_timestamps(again) == without_timestamps(original)


def _damage(directory: Path, case: str) -> None:
    if case == "summary.json corrupt":
        (directory / "summary.json").write_text("{ not json")
    elif case == "posterior.nc corrupt":
        (directory / "posterior.nc").write_bytes(b"\x89HDF\r\n garbage")
    elif case == "posterior.nc missing":
        (directory / "posterior.nc").unlink()
    elif case == "different data":
        payload = json.loads((directory / "summary.json").read_text())
        payload["data"]["table"]["successes"][0] += 1
        (directory / "summary.json").write_text(json.dumps(payload))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no directory", "no such directory"),
        ("summary.json corrupt", "summary.json .* does not match its manifest"),
        ("posterior.nc corrupt", "posterior.nc .* does not match its manifest"),
        ("posterior.nc missing", "has no posterior.nc"),
        ("different data", "summary.json .* does not match its manifest"),
    ],
)
def test_report_of_bad_directory_exits_2_with_one_line(tmp_path, fit, case, message) -> None:
    directory = tmp_path / "run"
    if case != "no directory":
        fit.save(directory, report=False)
        _damage(directory, case)
    with pytest.raises(abpool.InvalidDataError, match=message):
        abpool.load(directory)
    if case in ("no directory", "posterior.nc corrupt"):  # the CLI path, once per kind of failure
        proc = run("report", directory)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("abpool: error:") and re.search(message, lines[0])


def test_demo_report_walks_through_the_article(tmp_path) -> None:
    demo = run_demo(seed=3, out=tmp_path)
    html = demo.path.read_text(encoding="utf-8")
    for heading in (
        "Shrinkage depends on sample size",
        "A&#39;s posterior and the grand rate",
        "Every variant moves",
        "Every comparison from one posterior",
        "The prior, in the open",
    ):
        assert heading in html
    for res in demo.scenarios.values():
        assert res.cells.fingerprint in html
    segments = demo.segments
    assert "Now let&#39;s get multilevel: Canada and China" in html
    p = segments.prob_beats_control(segment="Canada")
    assert f"{p:.1%} chance the treatment improved conversion in Canada" in html
    assert segments.diagnostics.divergences == 0
    # 4 variants figures; forest, lift shrinkage and chains for Canada/China.
    assert html.count("<img ") == 7
    assert segments_sections(dataclasses.replace(demo, segments=None)) == ()


# ------------------------------------------------------------------ a real browser
@pytest.fixture(scope="module")
def chromium_available() -> None:
    if find_chromium() is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")


def test_browser_detects_requests_and_errors(tmp_path, chromium_available) -> None:
    # The checks below can fail: a page that fetches and logs is caught.
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>bad</title></head><body><img src="http://127.0.0.1:9/x.png" alt="x">'
        "<script>console.error('boom'); undefined_function();</script></body></html>"
    )
    seen = inspect_page(page, tmp_path / "bad.png")
    assert seen.requests == ["http://127.0.0.1:9/x.png"]
    assert any("boom" in line for line in seen.console)
    assert seen.errors and not seen.figures[0]["naturalWidth"]


@pytest.mark.parametrize("which", ["demo", "unreliable mcmc"])
def test_report_in_headless_chromium(tmp_path, chromium_available, mcmc_fit, which) -> None:
    if which == "demo":
        path = run_demo(seed=2016, out=tmp_path).path
    else:
        diagnostics = dataclasses.replace(mcmc_fit.diagnostics, converged=False, warnings=["R-hat 1.2 > 1.01"])
        path = tmp_path / "report.html"
        path.write_text(render_report(dataclasses.replace(mcmc_fit, diagnostics=diagnostics)), encoding="utf-8")
    screenshot = tmp_path / "report.png"
    seen = inspect_page(path, screenshot)
    assert seen.requests == [] and seen.console == [] and seen.errors == []
    expected = 7 if which == "demo" else 5
    for figures in (seen.figures, seen.print_figures):  # on screen and in print media
        assert len(figures) == expected
        for figure in figures:
            assert figure["complete"] and figure["naturalWidth"] > 100, figure
            assert figure["visible"] and figure["width"] > 100 and figure["height"] > 100, figure
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    print(f"screenshot: {screenshot}")
    keep = os.environ.get("ABPOOL_SCREENSHOT")
    if keep and which == "demo":
        shutil.copyfile(screenshot, keep)


@pytest.mark.parametrize("width", [1400, 420])
def test_report_fits_wide_and_narrow_screens(tmp_path, chromium_available, width) -> None:
    frame = abpool.datasets.make_dataframe(100, [30, 50, 55, 60])
    result = abpool.analyze_segments(frame, segment="country", arm="treated", seed=3, rope=0.02)
    path = tmp_path / "report.html"
    path.write_text(render_report(result), encoding="utf-8")
    screenshot = tmp_path / f"report-{width}.png"
    seen = inspect_page(path, screenshot, width=width)
    assert seen.requests == [] and seen.console == [] and seen.errors == []
    layout = seen.layout
    assert layout["viewport"] == width
    # Only tables and figures may be wider than the screen, and those scroll; the page itself never does.
    assert layout["page"] <= width, layout
    assert all(table["scrolls"] for table in layout["tables"] if table["overflowing"]), layout
    # Figures keep a size at which their text is legible (on a narrow screen they scroll instead of shrinking).
    assert min(layout["figures"]) >= min(600, width - 60), layout
    print(f"screenshot: {screenshot}")
    keep = os.environ.get("ABPOOL_SCREENSHOT_DIR")
    if keep:
        shutil.copyfile(screenshot, Path(keep) / screenshot.name)
