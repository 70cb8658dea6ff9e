"""Where a command's output goes: JSON on stdout for scripts, or rich renderables for people;
messages about the run (progress, warnings) on stderr, shown only on a terminal."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status

from .group import NOTES  # notes held back under --json, written by cli/group.py

PIPE_WIDTH = 120


class Output:
    """One command's output channels."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        # Under --json, notes wait for the command's end and come out as JSON (cli/group.py).
        ctx = click.get_current_context(silent=True)
        self._held: list[str] | None = (
            ctx.meta.setdefault(NOTES, []) if as_json and ctx is not None else None)
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        if not self.out.is_terminal and "COLUMNS" not in os.environ:
            self.out.width = PIPE_WIDTH  # a pipe or a file: no terminal to fit, avoid cutting

    def data(self, payload: Any, *, compact: bool = False) -> None:
        """JSON for scripts: one document (indented), or one line when `compact`."""
        click.echo(json.dumps(payload, indent=None if compact else 2, ensure_ascii=False))

    def show(self, *renderables: RenderableType) -> None:
        """Tables and panels for people."""
        self.out.print(*renderables)

    def line(self, text: str = "") -> None:
        """A plain line on stdout, printed verbatim (no markup: it may hold user data)."""
        click.echo(text)

    def note(self, text: str) -> None:
        """A plain line on stderr: warnings and explanations that are not the result. Under
        --json, held back and written as JSON when the command ends (an error with the exit
        code when it fails)."""
        if self._held is not None:
            self._held.append(text)
            return
        click.echo(text, err=True)

    @property
    def interactive(self) -> bool:
        """Whether to draw live progress: people on a terminal, never scripts."""
        return not self.as_json and self.err.is_terminal

    @contextmanager
    def activity(self, message: str) -> Iterator[Status | None]:
        """A spinner on stderr while something slow runs (only on a terminal)."""
        if not self.interactive:
            yield None
            return
        with self.err.status(message) as status:
            yield status

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A progress bar on stderr (drawn only on a terminal); yields `advance(n)`."""
        bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            disable=not self.interactive,
            transient=True,
        )
        with bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
