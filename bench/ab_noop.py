"""No-op throughput of two conveyor trees, interleaved (old new new old old new new old): the
`none` workload of limits_throughput.py (N no-op jobs, W `conveyor worker --burst` processes,
jobs/s over the 10-90 % of their starts), each run on a fresh database, with PYTHONPATH set to
the tree's src/. Compares a change against a commit checked out elsewhere:

    git worktree add --detach /tmp/old-tree e758008
    .venv/bin/python bench/ab_noop.py --old /tmp/old-tree/src --new src --backend sqlite
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from limits_throughput import run_once
from pg import DEFAULT_ADMIN_URL, Server

ORDER = ("old", "new", "new", "old", "old", "new", "new", "old")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="the old tree's src/ folder")
    parser.add_argument("--new", required=True, help="the new tree's src/ folder")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    options = parser.parse_args()
    trees = {"old": str(Path(options.old).resolve()), "new": str(Path(options.new).resolve())}
    server = Server(options.admin_url) if options.backend == "postgresql" else None
    if server is not None:
        server.drop_leftovers()
    rates: dict[str, list[float]] = {"old": [], "new": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index, tree in enumerate(ORDER):
                os.environ["PYTHONPATH"] = trees[tree]
                url = (server.create(f"ab_{index}") if server is not None
                       else f"sqlite:///{Path(tmp) / f'ab-{index}.db'}")
                rate = run_once(url, "none", options.jobs, options.workers, options.concurrency)
                rates[tree].append(rate)
                print(f"{tree}: {rate:,.0f} jobs/s", flush=True)
                if server is not None:
                    server.drop(url.rsplit("/", 1)[1])
    finally:
        if server is not None:
            server.drop_all()
    old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
    runs = {tree: ", ".join(f"{r:,.0f}" for r in rates[tree]) for tree in rates}
    print(f"| {options.backend} | {runs['old']} | {runs['new']} | {old:,.0f} | {new:,.0f} | "
          f"{new / old:.2f} |")


if __name__ == "__main__":
    main()
