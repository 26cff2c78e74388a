"""One markdown-table writer for every report: the model card, ``RESULTS.md`` and
``RESULTS-gpu.md`` write their tables through it, so the pipe and rule syntax lives once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a markdown table; ``align`` has one letter a column: ``l`` left, ``r``
    right. An empty cell is one space (``| |``). A row of the wrong width is refused: it
    would shift every cell after it."""
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r}: one letter l or r for each of {len(header)} columns")
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = []
    for cells in (header, rule, *rows):
        if len(cells) != len(header):
            raise ValueError(f"table row {list(cells)}: {len(cells)} cells, {len(header)} columns")
        lines.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    return lines
