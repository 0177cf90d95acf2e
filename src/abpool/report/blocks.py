"""The pieces a report is made of: plain, frozen records that templates lay out.

A report is a list of :class:`Section` objects, each an ordered list of blocks
(text, decisions, warnings, tables, figures, facts). Builders turn a result into
sections; the template only lays the blocks out, so a new result type (the
segments model, say) needs a builder, not a new template.

Examples
--------
>>> section = Section("data", "The data", (Text("Four variants, 100 trials each."),))
>>> [block.kind for block in section.blocks]
['text']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (escaped when rendered)."""

    text: str
    kind: ClassVar[str] = "text"


@dataclass(frozen=True)
class Decisions:
    """The answers, one plain sentence each."""

    items: tuple[str, ...]
    title: str = ""
    kind: ClassVar[str] = "decisions"


@dataclass(frozen=True)
class Alert:
    """A warning box: the fit is unreliable, or something needs the reader's attention."""

    title: str
    items: tuple[str, ...]
    kind: ClassVar[str] = "alert"


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells; ``numeric`` columns are right-aligned."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    note: str = ""
    kind: ClassVar[str] = "table"

    def is_numeric(self, index: int) -> bool:
        """Whether column ``index`` holds numbers."""
        return index < len(self.numeric) and self.numeric[index]


@dataclass(frozen=True)
class Figure:
    """A figure embedded as a ``data:`` URI (no file, no request)."""

    title: str
    uri: str
    alt: str
    caption: str = ""
    kind: ClassVar[str] = "figure"


@dataclass(frozen=True)
class Facts:
    """Label–value pairs (prior, engine, seed, fingerprint …)."""

    title: str
    items: tuple[tuple[str, str], ...]
    kind: ClassVar[str] = "facts"


Block = Text | Decisions | Alert | Table | Figure | Facts


@dataclass(frozen=True)
class Section:
    """A titled part of the report; ``id`` is its anchor in the table of contents."""

    id: str
    title: str
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class Report:
    """A whole report: title, sections and the provenance needed to reproduce it."""

    title: str
    sections: tuple[Section, ...]
    provenance: tuple[tuple[str, str], ...] = ()
    subtitle: str = ""
    warnings: tuple[str, ...] = ()
