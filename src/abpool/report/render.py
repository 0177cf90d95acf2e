"""Rendering reports to HTML with Jinja2 (the only module that imports a template engine).

Any result is turned into a :class:`~abpool.report.blocks.Report` through the
result contract (:mod:`abpool.report.sections`); the template lays out any
report, so a new model needs neither a builder nor a template.

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
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from abpool.errors import InvalidArgumentError
from abpool.io import atomic_write
from abpool.report.blocks import Report


def build_report(result: Any, *, figures: bool = True) -> Report:
    """The :class:`Report` of any result (a :class:`~abpool.report.blocks.Report` passes through)."""
    from abpool.report.sections import result_report
    from abpool.result import Result

    if isinstance(result, Report):
        return result
    if not isinstance(result, Result):
        raise InvalidArgumentError(f"result must be an abpool result or a Report, got a {type(result).__name__}")
    return result_report(result, figures=figures)


@cache
def _environment() -> Any:
    import jinja2
    from markupsafe import Markup

    from abpool._format import display

    return jinja2.Environment(
        loader=jinja2.PackageLoader("abpool.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        # Every value printed passes through display(): a control character in a name shows as an escape.
        finalize=lambda value: value if isinstance(value, Markup) else display(value),
    )


def _stylesheet() -> str:
    return resources.files("abpool.report").joinpath("templates", "report.css").read_text(encoding="utf-8")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def render_report(result: Any, *, rendered_at: str | None = None) -> str:
    """A self-contained HTML document (figures inline, no external requests) for ``result``.

    Parameters
    ----------
    result : Result or Report
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


def write_batch_index(path: str | Path, rows: list[dict[str, Any]], *, title: str, subtitle: str, counts: str) -> Path:
    """Write a batch's index page atomically (rows built by :mod:`abpool.batch.index`)."""
    from abpool._version import __version__

    html = (
        _environment()
        .get_template("batch_index.html.j2")
        .render(
            title=title,
            subtitle=subtitle,
            counts=counts,
            rows=rows,
            css=_stylesheet(),
            version=__version__,
            rendered_at=_now(),
        )
    )
    return atomic_write(Path(path), lambda p: p.write_text(html, encoding="utf-8"))
