"""How commands print: rich tables on a terminal, plain lines otherwise, JSON on request.

Plain output is tab-free, one row per line, so ``grep`` and ``awk`` work on
it and it reads well in a journal or an SSH session without a terminal.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["busy", "echo_json", "on_terminal", "table"]


def on_terminal() -> bool:
    return sys.stdout.isatty()


def busy(message: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner on stderr while something slow runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table: rich on a terminal, aligned plain text otherwise."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    if on_terminal():
        from rich.console import Console
        from rich.table import Table

        rich_table = Table(title=title or None, show_header=any(columns))
        for column in columns:
            rich_table.add_column(column)
        for row in cells:
            rich_table.add_row(*row)
        Console().print(rich_table)
        return
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    if title:
        click.echo(title)
    if any(columns):
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
