"""Result files for people and spreadsheets: CSV tables, Markdown tables and PNG figures, each written atomically
through ``inv_kernels.io`` (JSON results: ``io.atomic_write_json``). Measurement, transfer, the correlation and the
study all write their tables and figures with these."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from inv_kernels.io import atomic_write_bytes

DPI = 110  # the resolution of every figure the project writes


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A Markdown table: a header row, the separator, then one line per row; cells are written with ``str``.

    Args:
        header: the column names.
        rows: one sequence of cells per row, as many as the header.
        align: one letter per column, ``l`` (left) or ``r`` (right, for numbers); default all left.

    Raises:
        ValueError: a row with another number of cells than the header (named by its position), or an ``align``
            of another length or with other letters.
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"markdown_table: align must be one of l/r per column ({len(header)}), got {align!r}")
    separator = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    lines = ["| " + " | ".join(map(str, header)) + " |", separator]
    for number, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"markdown_table: row {number} has {len(row)} cells, the header {len(header)}")
        lines.append("| " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """Rows of scalars as CSV, atomically: the columns are the first row's keys whose values are not lists or dicts
    (the others are left out); nothing is written when there is no row. Returns ``path``."""
    path = Path(path)
    if not rows:
        return path
    columns = [key for key, value in rows[0].items() if not isinstance(value, (list, dict))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_bytes(buffer.getvalue().encode(), path)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def annotate_cells(ax, grid, fmt: str, white, missing: str | None = None) -> None:
    """Writes each cell's value on a heat map drawn with ``ax.imshow(grid)``.

    Args:
        ax: the axes of the heat map.
        grid: (rows, columns) numbers; NaN cells get ``missing`` in black, or nothing when it is None.
        fmt: the format of a value, such as ``"{:.2f}"``.
        white: value -> True where the text is white (on the colour map's dark end), else black.
        missing: the text of a NaN cell.
    """
    for (i, j), value in np.ndenumerate(np.asarray(grid, dtype=float)):
        if np.isnan(value):
            if missing is not None:
                ax.text(j, i, missing, ha="center", va="center", fontsize=7, color="black")
            continue
        ax.text(
            j, i, fmt.format(value), ha="center", va="center", fontsize=7, color="white" if white(value) else "black"
        )


def write_png(fig, path: str | os.PathLike) -> Path:
    """Writes a matplotlib figure as a PNG (``DPI`` dots per inch) atomically and closes it; returns ``path``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    pyplot().close(fig)
    return atomic_write_bytes(buffer.getvalue(), Path(path))
