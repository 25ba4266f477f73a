"""Terminal tables that fit an 80-column terminal or log: a short architecture notation, one line per row.

The full tables (every column, the long architecture summary) are one `--wide` away and always in the
report's markdown and HTML.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from mnist_arch.config import ArchConfig
from mnist_arch.notation import describe

# Rules around the table and under the header, none between columns: a column costs two blanks, not three.
FRAME = box.Box("┌──┐\n│  │\n├──┤\n│  │\n├──┤\n├──┤\n│  │\n└──┘\n")
ARCH_LEGEND = "arch: conv widths (8×3: three convs of 8; p padded), P maxpool, T 1×1 transition"


def arch_notation(arch: ArchConfig) -> str:
    """The layers in a dozen characters, e.g. iteration 3 is '8×3 P 12×5 P', iteration 1 '8×3 P T 12×5 P'."""
    return describe(arch, short=True)


def percent(value: float | None) -> str:
    """An accuracy as a bare percentage ('99.12'); the column header carries the unit."""
    return "-" if value is None else f"{100 * value:.2f}"


def mean_std(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}±{100 * std:.2f}"


def compact_table(
    title: str,
    header: Sequence[str],
    cells: Sequence[Sequence[str]],
    *,
    left: Sequence[str] = (),
    fit: bool = True,
) -> Table:
    """A table without vertical rules. With `fit`, every row stays on one line: the `arch` column alone gives
    way (cut with an ellipsis) where the terminal is too narrow; else cells wrap as needed."""
    table = Table(
        title=title,
        box=FRAME,
        padding=(0, 1),
        collapse_padding=True,
        title_justify="left",
        min_width=len(title),  # the title and caption get the full line, not the columns' width
        caption_justify="left",
    )
    shrinks = [fit and column == "arch" for column in header]
    for column, shrink in zip(header, shrinks, strict=True):
        # rich narrows only the columns that may wrap: the arch column may, its cells are cut instead
        table.add_column(column, justify="left" if column in left else "right", no_wrap=fit and not shrink)
    for line in cells:
        table.add_row(
            *(
                Text(cell, no_wrap=True, overflow="ellipsis") if shrink else cell
                for cell, shrink in zip(line, shrinks, strict=True)
            )
        )
    return table
