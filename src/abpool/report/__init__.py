"""The HTML report: self-contained, printable, rendered from results without refitting.

:func:`render_report` turns a result (or a hand-assembled
:class:`~abpool.report.blocks.Report`, as the demo builds) into one HTML file
whose figures are inline SVG data URIs, so it opens anywhere, offline, and
prints cleanly. Nothing here recomputes a model quantity: sections read the
result's summaries, probabilities and diagnostics.
"""

from abpool.report.blocks import Alert, Decisions, Facts, Figure, Report, Section, Table, Text
from abpool.report.render import build_report, render_fragment, render_report, write_report

__all__ = [
    "Alert",
    "Decisions",
    "Facts",
    "Figure",
    "Report",
    "Section",
    "Table",
    "Text",
    "build_report",
    "render_fragment",
    "render_report",
    "write_report",
]
