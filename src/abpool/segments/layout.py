"""A segmented experiment's cells as index arrays, and their empirical logits.

Examples
--------
>>> from abpool.data import load_cells
>>> from abpool.datasets import make_dataframe
>>> cells = load_cells(make_dataframe(100, [30, 50, 55, 60]), segment="country", arm="treated")
>>> layout_from_cells(cells, control="0").shape
(2, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from abpool.data import Cells
from abpool.errors import InvalidArgumentError, InvalidDataError


@dataclass(frozen=True)
class SegmentLayout:
    """Cells of a segmented experiment as index arrays.

    Attributes
    ----------
    segments : tuple of str
        Segment labels (several segment columns are joined with ``" / "``).
    arms : tuple of str
        Arm labels, the control first.
    segment_index, arm_index : numpy.ndarray
        Per cell, the segment and arm (0 = control) it belongs to.
    trials, successes : numpy.ndarray
        Per cell counts.
    """

    segments: tuple[str, ...]
    arms: tuple[str, ...]
    segment_index: NDArray[np.int64]
    arm_index: NDArray[np.int64]
    trials: NDArray[np.int64]
    successes: NDArray[np.int64]

    @property
    def control(self) -> str:
        return self.arms[0]

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.arms[1:]

    @property
    def shape(self) -> tuple[int, int]:
        """``(segments, treatment arms)``."""
        return len(self.segments), len(self.arms) - 1

    def cell_counts(self) -> tuple[NDArray, NDArray]:
        """Trials and successes as ``(segments, arms)`` matrices; missing cells are 0 trials."""
        n = np.zeros((len(self.segments), len(self.arms)), dtype=np.int64)
        y = np.zeros_like(n)
        n[self.segment_index, self.arm_index] = self.trials
        y[self.segment_index, self.arm_index] = self.successes
        return n, y


def layout_from_cells(cells: Cells, control: str | None = None) -> SegmentLayout:
    """Index the cells by segment and arm, the control arm first.

    Examples
    --------
    >>> from abpool.data import load_cells
    >>> from abpool.datasets import make_dataframe
    >>> cells = load_cells(make_dataframe(100, [30, 50, 55, 60]), segment="country", arm="treated")
    >>> layout = layout_from_cells(cells, control="0")
    >>> layout.segments, layout.arms, layout.trials.tolist()
    (('Canada', 'China'), ('0', '1'), [100, 100, 100, 100])
    """
    if not cells.segment_columns:
        raise InvalidArgumentError("the segments model needs at least one segment column (--segment COL)")
    table = cells.table
    arms = list(cells.arms)
    control_label = str(control) if control is not None else arms[0]
    if control_label not in arms:
        listed = ", ".join(repr(a) for a in arms[:20])
        raise InvalidDataError(
            f"control arm {control_label!r} is not in column {cells.arm_column!r}; arms are: {listed}"
        )
    arms.remove(control_label)
    arms.insert(0, control_label)
    labels = cells.segment_labels()
    segments = tuple(dict.fromkeys(labels))
    seg_pos = {s: i for i, s in enumerate(segments)}
    arm_pos = {a: i for i, a in enumerate(arms)}
    layout = SegmentLayout(
        segments=segments,
        arms=tuple(arms),
        segment_index=np.array([seg_pos[label] for label in labels], dtype=np.int64),
        arm_index=table["arm"].map(arm_pos).to_numpy(dtype=np.int64),
        trials=table["trials"].to_numpy(dtype=np.int64),
        successes=table["successes"].to_numpy(dtype=np.int64),
    )
    n, _ = layout.cell_counts()
    missing = np.argwhere(n == 0)
    if len(missing):
        s, k = missing[0]
        more = f" (and {len(missing) - 1} more missing cells)" if len(missing) > 1 else ""
        raise InvalidDataError(
            f"segment {segments[s]!r} has no {'control' if k == 0 else 'treatment'} cell for arm {layout.arms[k]!r}"
            f"{more}: its effect would come from the prior alone; add the cell's data or leave the segment out"
        )
    return layout


def _cell_logits(n: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    """Half-corrected empirical logit of each cell and its precision (0 for a missing cell).

    Adding 0.5 to successes and failures keeps empty and full cells finite.
    """
    logit = np.log(y + 0.5) - np.log(n - y + 0.5)
    precision = np.where(n > 0, 1.0 / (1.0 / (y + 0.5) + 1.0 / (n - y + 0.5)), 0.0)
    return np.where(n > 0, logit, 0.0), precision


def logit_estimates(layout: SegmentLayout) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Empirical logits of intercepts and slopes with their approximate variances.

    Missing cells get an infinite variance.

    Returns
    -------
    a_hat, a_var : arrays of shape (segments,)
    b_hat, b_var : arrays of shape (segments, treatments)

    Examples
    --------
    >>> from abpool.data import load_cells
    >>> from abpool.datasets import make_dataframe
    >>> cells = load_cells(make_dataframe(100, [30, 50, 55, 60]), segment="country", arm="treated")
    >>> a_hat, a_var, b_hat, b_var = logit_estimates(layout_from_cells(cells, control="0"))
    >>> [round(float(x), 2) for x in b_hat[:, 0]]
    [0.84, 0.2]
    """
    n, y = layout.cell_counts()
    logit, precision = _cell_logits(n, y)
    with np.errstate(divide="ignore"):
        var = 1.0 / precision
    return logit[:, 0], var[:, 0], logit[:, 1:] - logit[:, [0]], var[:, 1:] + var[:, [0]]
