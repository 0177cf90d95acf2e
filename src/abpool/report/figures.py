"""Figures as SVG ``data:`` URIs: vector (crisp when printed), self-contained, reproducible.

The same figure always gives the same bytes: matplotlib's SVG ids are seeded
with a fixed salt and the date stamp is left out, so a report rendered again
from saved results matches the original.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

from abpool.report.blocks import Figure

SVG_SALT = "abpool"


def svg_data_uri(fig: MplFigure) -> str:
    """Render ``fig`` to SVG and return it as a base64 ``data:image/svg+xml`` URI.

    Examples
    --------
    >>> from matplotlib.figure import Figure as MplFigure
    >>> fig = MplFigure(figsize=(1, 1)); _ = fig.add_subplot().plot([0, 1])
    >>> uri = svg_data_uri(fig)
    >>> uri.startswith("data:image/svg+xml;base64,"), uri == svg_data_uri(fig)
    (True, True)
    """
    import warnings

    import matplotlib

    buffer = io.BytesIO()
    # Text as paths: the reader's machine needs no font, and nothing is fetched.
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "path"}), warnings.catch_warnings():
        # A name in a script the bundled font lacks is drawn as boxes; that is no reason to print warnings.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def embed(fig: MplFigure, title: str, alt: str, caption: str = "") -> Figure:
    """Turn a matplotlib figure into a report :class:`~abpool.report.blocks.Figure` and free it."""
    uri = svg_data_uri(fig)
    fig.clear()
    return Figure(title=title, uri=uri, alt=alt, caption=caption)
