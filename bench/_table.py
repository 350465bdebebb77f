"""The one table ``make bench`` prints (plain text, also valid Markdown)."""

from __future__ import annotations

from typing import List, Optional

import attrs

__all__ = ["Row", "render"]


@attrs.frozen(kw_only=True)
class Row:
    """A table row; a row with only a ``note`` reports a single fact."""

    name: str
    load: str = ""
    rps: Optional[float] = None
    p50: Optional[float] = None
    p99: Optional[float] = None
    errors: Optional[int] = None
    cpu: Optional[float] = None
    rss: Optional[float] = None
    ratio: Optional[float] = None
    note: str = ""


_HEAD = ["row", "load", "req/s", "p50 ms", "p99 ms", "errors", "CPU", "peak RSS MB", "x Caddy"]


def _cells(row: Row) -> List[str]:
    if row.rps is None:
        return [row.name, row.note] + [""] * 7
    return [
        row.name,
        row.load,
        f"{row.rps:.0f}",
        f"{row.p50:.2f}",
        f"{row.p99:.2f}",
        str(row.errors),
        f"{row.cpu * 100:.0f}%",
        f"{row.rss:.1f}",
        "" if row.ratio is None else f"{row.ratio:.2f}",
    ]


def render(rows: List[Row], machine: str, seconds: float, rounds: int) -> str:
    """A Markdown table; numbers are medians of ``rounds`` runs of
    ``seconds`` each, CPU in % of one core, RSS summed over the process
    tree (master and workers)."""
    table = [_HEAD] + [_cells(r) for r in rows]
    full = [_HEAD] + [_cells(r) for r in rows if r.rps is not None]
    widths = [max(len(r[i]) for r in full) for i in range(len(_HEAD))]
    lines = []
    for n, cells in enumerate(table):
        if cells[2] == "" and n:
            lines.append(f"| {cells[0].ljust(widths[0])} | {cells[1]} |")
            continue
        lines.append("| " + " | ".join(c.rjust(w) if i > 1 else c.ljust(w)
                                        for i, (c, w) in enumerate(zip(cells, widths))) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append("")
    lines.append(f"Medians of {rounds} runs of {seconds:g} s each, rows interleaved; "
                 "CPU in % of one core (all processes); peak RSS of the largest process; "
                 "x Caddy = req/s over the Caddy row of the same load.")
    lines.append(f"Machine: {machine}.")
    return "\n".join(lines)
