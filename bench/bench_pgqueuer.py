"""PgQueuer entrypoints for the PostgreSQL comparison; each worker is
`pgq run bench_pgqueuer:create` (asyncpg, one connection per worker, as its README shows).

The database is $BENCH_PG_URL (a benchmark database of its own). Entrypoints are async
functions, PgQueuer's own fast path (a sync entrypoint would go through a thread).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from marks import mark_done, mark_ready, mark_stamp
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    connection = await asyncpg.connect(os.environ["BENCH_PG_URL"])
    try:
        pgq = PgQueuer(AsyncpgDriver(connection))

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            mark_done()

        @pgq.entrypoint("stamp")
        async def stamp(job: Job) -> None:
            mark_stamp(int(job.payload or b"0"))

        mark_ready("pgqueuer-worker")
        yield pgq
    finally:
        await connection.close()


def main() -> None:
    """What `pgq run bench_pgqueuer:create` does, with its defaults: its logger at INFO, the
    supervisor's `run` on uvloop. (`pgq run` itself fails in pgqueuer 1.6.0 with the typer
    and click this venv gets: AttributeError in setup_fancy_logger.)"""
    import pgqueuer
    from pgqueuer.adapters.cli.cli import asyncio_run
    from pgqueuer.core import logconfig

    logconfig.setup_fancy_logger(logconfig.LogLevel.INFO)
    asyncio_run(pgqueuer.run(create))


if __name__ == "__main__":
    main()
