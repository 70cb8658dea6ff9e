"""`conveyor` command group. Users' mistakes end with a message and exit code 2, no traceback."""

from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..errors import ConfigurationError, InvalidInput


class ConveyorGroup(click.Group):
    """Turns conveyor's own configuration and input errors into clean usage errors."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ConfigurationError, InvalidInput) as exc:
            raise click.UsageError(str(exc), ctx) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(cls=ConveyorGroup)
@click.version_option(__version__, prog_name="conveyor")
def cli() -> None:
    """conveyor: durable background jobs on SQLite."""


def main() -> None:
    cli(prog_name="conveyor", obj={"own_process": True})


from . import demo, worker  # noqa: E402  (commands register themselves on `cli`)

__all__ = ["cli", "demo", "main", "worker"]
