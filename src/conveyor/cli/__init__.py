"""The `conveyor` command line.

Light to import: the console script imports this package to call `main`, and so does each
process of a process pool that such a worker starts (spawn runs the script that started the
worker again), which needs none of the commands. The root group lives in `group`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


def main() -> None:
    """Run the `conveyor` command in this process (an application may call it: its own state
    stays its own)."""
    from .group import main as run

    run()


def entry_point() -> None:
    """The console script's and `python -m conveyor`'s entry: the command in a process that is
    nothing else, which `conveyor worker` may then fork (see worker/pools/spawn.py)."""
    from .group import main as run

    run(fresh_process=True)


if TYPE_CHECKING:
    from .group import cli
else:

    def __getattr__(name: str) -> Any:
        if name == "cli":
            from .group import cli

            return cli
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "main"]
