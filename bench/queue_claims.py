"""What queue controls cost a claim (SQLite), from claim_scaling.py's cached backlogs.

1. The plain claim statement of this tree against another tree's (`--old SRC_TREE`, e.g. an
   exported older commit), 16 jobs per claim from 10,000 queued, rolled back each time, on one
   connection, interleaved rounds: the price of the paused-queue condition.
2. Claims of 32 through the backend, FIFO (claim.sql) and LIFO (claim_lifo.sql), from 10,000
   and from 1,000,000 queued: LIFO's cost must stay flat as the backlog grows.

    .venv/bin/python bench/queue_claims.py --old /tmp/old-tree
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from claim_scaling import cached_db

from conveyor import sql
from conveyor.backends import open_backend
from conveyor.records import ClaimPlan

HERE = Path(__file__).resolve().parent


def claim_text(tree: Path) -> tuple[str, tuple[str, ...]]:
    folder = tree / "src" / "conveyor" / "sql" / "sqlite"
    term = (folder / "claim_candidates_one_queue.sql").read_text().replace("{n}", "0")
    return sql.numbered((folder / "claim.sql").read_text().replace("{candidates}", term))


def statement_cost(old_tree: Path, rounds: int = 7, claims: int = 2000) -> None:
    texts = {"old": claim_text(old_tree), "new": claim_text(HERE.parent)}
    took: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "claims.db"
        shutil.copy(cached_db(10_000), db)
        con = sqlite3.connect(db, isolation_level=None)
        for _ in range(rounds):
            for label, (text, names) in texts.items():
                values = {"now": time.time(), "owner": "w", "lease": 30.0,
                          "queue_0": "default", "limit": 16}
                args = [values[name] for name in names]
                started = time.perf_counter()
                for _ in range(claims):
                    con.execute("BEGIN IMMEDIATE")
                    con.execute(text, args).fetchall()
                    con.execute("ROLLBACK")
                took[label].append((time.perf_counter() - started) / claims * 1e6)
        con.close()
    for label, times in took.items():
        times.sort()
        print(f"claim.sql {label}: median {times[len(times) // 2]:.1f} us, best {times[0]:.1f} "
              "us per claim of 16")


def lifo_flatness(jobs: int = 5000, rounds: int = 3) -> None:
    for backlog in (10_000, 1_000_000):
        source = cached_db(backlog)
        for plan in (None, ClaimPlan(lifo=frozenset({"default"}))):
            best = 0.0
            for _ in range(rounds):
                with tempfile.TemporaryDirectory() as tmp:
                    db = Path(tmp) / "claims.db"
                    shutil.copy(source, db)
                    backend = open_backend(f"sqlite:///{db}")
                    started = time.perf_counter()
                    claimed = 0
                    while claimed < jobs:
                        claimed += len(backend.ack_and_claim((), "w", ["default"], 32, 30.0,
                                                             (), plan)[1])
                    best = max(best, claimed / (time.perf_counter() - started))
                    backend.close()
            print(f"{backlog:>9,} queued, {'lifo' if plan else 'fifo'}: {best:,.0f} claims/s "
                  "(best round)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, help="a source tree to compare claim.sql with")
    options = parser.parse_args()
    if options.old is not None:
        statement_cost(options.old)
    lifo_flatness()


if __name__ == "__main__":
    main()
