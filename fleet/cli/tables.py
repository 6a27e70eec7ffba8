"""Tables for people and for programs (rich): one description of the columns, two looks.

Not on a terminal (a pipe, a file, cron, the lab tests): no colour, no box, no line wrapped or cut however long,
each column as wide as its widest cell (at least ``min_width``), ``gap`` spaces between columns, trailing spaces
dropped. That is the text the hand-written tables printed, so scripts that split it on whitespace keep working.
On a terminal: the same columns and cells, a bold header over a rule, fitted to the terminal's width.

The tables of the commands are here too (pure: rows in, a ``Table`` out), for the tasks and the shell.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text


@dataclass(frozen=True)
class Column:
    header: str = ""
    min_width: int = 0
    right: bool = False  # numbers: justified right


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    gap: int = 2  # spaces between columns
    header: bool = True
    indent: int = 0  # spaces before each line

    def width(self) -> int:
        """The width no cell of which is wrapped or cut."""
        lines = [tuple(c.header for c in self.columns), *self.rows] if self.header else list(self.rows)
        widths = [max([c.min_width, *(cell_len(line[i]) for line in lines)]) for i, c in enumerate(self.columns)]
        return self.indent + sum(widths) + self.gap * len(widths) + 1

    def rich(self, terminal: bool) -> Any:
        from rich.padding import Padding
        from rich.table import Table as RichTable

        t = RichTable(box=box.SIMPLE_HEAD if terminal and self.header else None, show_header=self.header, show_edge=False,
                      pad_edge=False, padding=(0, self.gap, 0, 0), header_style="bold" if terminal else "")  # fmt: skip
        for c in self.columns:
            t.add_column(Text(c.header), min_width=None if terminal else c.min_width or None,  # the old layout, for a pipe
                         justify="right" if c.right else "left", no_wrap=not terminal, overflow="fold")  # fmt: skip
        for row in self.rows:
            t.add_row(*(Text(cell) for cell in row))
        return Padding(t, (0, 0, 0, self.indent)) if self.indent else t


def table(columns: Sequence[Column | str], rows: Iterable[Sequence[Any]], gap: int = 2, header: bool = True, indent: int = 0) -> Table:
    cols = tuple(c if isinstance(c, Column) else Column(c) for c in columns)
    return Table(cols, tuple(tuple(str(cell) for cell in row) for row in rows), gap, header, indent)


def render(t: Table) -> str:
    """The table as text for a pipe (see the module's docstring), without a newline at the end."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, force_interactive=False, no_color=True, color_system=None,
                      width=max(80, t.width()), markup=False, highlight=False, emoji=False, _environ={})  # fmt: skip
    console.print(t.rich(terminal=False))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def show(t: Table) -> None:
    """Print the table on stdout: drawn for a terminal, else as ``render`` gives it."""
    from fleet.cli.progress import is_terminal

    if is_terminal(sys.stdout):
        Console(file=sys.stdout, markup=False, highlight=False, emoji=False).print(t.rich(terminal=True))
    else:
        print(render(t), flush=True)


def fields(pairs: Iterable[tuple[str, Any]], key_width: int) -> Table:
    """``key: value`` lines, the values lined up (apps.info, releases.info, addons.info)."""
    return table([Column(min_width=key_width), Column()], ((f"{k}:", v) for k, v in pairs), gap=1, header=False)


# -- the commands' tables -------------------------------------------------------------------------------------------------
def nodes_status(rows: Sequence[Any]) -> Table:
    """nodes.status: one host a line (its cells: fleet.probe.status_cells)."""
    from fleet.probe import STATUS_HEADER, status_cells

    return table(STATUS_HEADER, [status_cells(r) for r in rows])


def usage(report: Any) -> tuple[str, Table]:
    """usage: the title line and the table of dyno hours (2 decimals, a total of the unrounded seconds)."""
    from fleet.metering import title

    rows = [(line.app, line.kind, line.type, line.size, f"{line.hours:.2f}") for line in report.lines]
    rows.append(("total", "", "", "", f"{report.seconds / 3600:.2f}"))
    return title(report), table(["APP", "KIND", "TYPE", "SIZE", Column("HOURS", right=True)], rows)


def builds(found: Sequence[Any]) -> Table:
    """builds: number, status, slug id, size, commit, buildpack, when."""
    from fleet.slug.compiler import human_size

    cols = [Column("BUILD", 6), Column("STATUS", 10), Column("SLUG", 13), Column("SIZE", 9), Column("COMMIT", 8),
            Column("BUILDPACK", 10), Column("CREATED")]  # fmt: skip
    rows = [(b.number, b.status, b.slug_id, human_size(b.slug_size), b.commit[:7] or "-", b.buildpack, b.created_at) for b in found]
    return table(cols, rows, gap=1)


NETWORK = {"up": "connected", "down": "partitioned", "absent": "no link"}


def lab_nodes(rows: Sequence[Any]) -> Table:
    """lab.up and lab.status: each node's address, power and network."""
    cols = [Column("NODE", 8), Column("ADDRESS", 16), Column("POWER", 8), Column("NETWORK", 12)]
    return table(cols, [(r.name, r.address, "on" if r.running else "off", NETWORK[r.link]) for r in rows], gap=1)


def releases(found: Sequence[Any]) -> Table:
    """releases, newest first: version, description, who, when, status."""
    cols = [Column(min_width=5), Column(min_width=40), Column(min_width=10), Column(), Column(), Column()]  # an empty one: 2 spaces
    rows = [(f"v{r.version}", r.description, r.actor, r.created_at, "", r.status) for r in found]
    return table(cols, rows, gap=1, header=False)


def inventory_hosts(nodes: Sequence[Any]) -> Table:
    """inventory.show: each host's name, user@address:port and groups, indented under the inventory's path."""
    cols = [Column(min_width=10), Column(), Column(), Column()]  # an empty one: 2 spaces before the groups
    rows = [(n.name, f"{n.user}@{n.address}:{n.port}", "", ",".join(n.groups)) for n in nodes]
    return table(cols, rows, gap=1, header=False, indent=2)


def addons(found: Sequence[Any], app: str) -> Table:
    """addons: name, service:plan, the config vars it sets on ``app`` (and the app that owns it, when another)."""
    width = max((len(a.service) + 1 + 8 for a in found), default=0)  # the plan took 8 columns
    rows = []
    for a in found:
        as_ = ", ".join(x.var for x in a.attachments if x.app == app) or "-"
        rows.append((a.name, f"{a.service}:{a.plan}", as_ + ("" if a.app == app else f" (from {a.app})")))
    return table([Column(min_width=20), Column(min_width=width), Column()], rows, gap=1, header=False)
