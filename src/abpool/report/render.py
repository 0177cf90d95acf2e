"""Rendering reports to HTML with Jinja2 (the only module that imports a template engine).

Each result type has a *builder* that turns it into a :class:`~abpool.report.blocks.Report`;
the template lays out any report, so adding a result type means registering a
builder (see :func:`register_builder`), not writing a template.

Examples
--------
>>> import abpool
>>> from abpool.report import render_report
>>> html = render_report(abpool.analyze_variants(successes=[30, 50], trials=[100, 100], seed=1))
>>> html.startswith("<!DOCTYPE html>"), "http://" in html or "https://" in html
(True, False)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from abpool.errors import InvalidArgumentError
from abpool.io import atomic_write
from abpool.report.blocks import Report

Builder = Callable[..., Report]


def _variants_builder(result: Any, *, figures: bool = True) -> Report:
    from abpool.report.variants import variants_report

    return variants_report(result, figures=figures)


def _segments_builder(result: Any, *, figures: bool = True) -> Report:
    from abpool.report.segments import segments_report

    return segments_report(result, figures=figures)


# Keyed by class name so that registering a result type never imports its module here.
BUILDERS: dict[str, Builder] = {"VariantsResult": _variants_builder, "SegmentsResult": _segments_builder}


def register_builder(type_name: str, builder: Builder) -> None:
    """Make results whose class is named ``type_name`` renderable by ``builder(result, figures=...)``."""
    BUILDERS[type_name] = builder


def build_report(result: Any, *, figures: bool = True) -> Report:
    """The :class:`Report` of any registered result type."""
    if isinstance(result, Report):
        return result
    name = type(result).__name__
    if name not in BUILDERS:
        raise InvalidArgumentError(
            f"cannot render a report of a {name}; renderable results: {', '.join(sorted(BUILDERS))}"
        )
    return BUILDERS[name](result, figures=figures)


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("abpool.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _stylesheet() -> str:
    return resources.files("abpool.report").joinpath("templates", "report.css").read_text(encoding="utf-8")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def render_report(result: Any, *, rendered_at: str | None = None) -> str:
    """A self-contained HTML document (figures inline, no external requests) for ``result``.

    Parameters
    ----------
    result : VariantsResult, any registered result type, or Report
    rendered_at : str, optional
        Timestamp printed as the rendering time (default: now, UTC).
    """
    report = build_report(result)
    return (
        _environment()
        .get_template("report.html.j2")
        .render(report=report, css=_stylesheet(), rendered_at=rendered_at or _now())
    )


def render_fragment(result: Any) -> str:
    """A compact HTML fragment without figures, for notebooks (``_repr_html_``)."""
    report = build_report(result, figures=False)
    return _environment().get_template("fragment.html.j2").render(report=report)


def write_report(path: str | Path, result: Any) -> Path:
    """Render ``result`` and write it to ``path`` atomically; returns the path."""
    html = render_report(result)
    return atomic_write(Path(path), lambda p: p.write_text(html, encoding="utf-8"))
