"""Enqueue rates of two conveyor trees, interleaved (old new new old ...), each run in a fresh
process with PYTHONPATH set to the tree's src/ and on a fresh database: `enqueue_many` in
batches of 1,000 including `task.prepare()` (as run_all.py's "enqueue many"), and one
`task.enqueue()` at a time; with --args, the prepared jobs carry arguments
(`prepare(i, "name-i", tags=[...])`) instead of none. Compares a change against a commit checked
out elsewhere:

    git worktree add --detach /tmp/old-tree c1578f2
    .venv/bin/python bench/ab_enqueue.py --old /tmp/old-tree/src --new src --backend sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pg import DEFAULT_ADMIN_URL, Server

ORDER = ("old", "new", "new", "old", "old", "new", "new", "old")


def measure(url: str, many: int, one: int, batch: int, with_args: bool) -> dict[str, float]:
    """Run inside the tree's process: jobs/s of enqueue_many (prepare included) and of
    enqueue one at a time."""
    from conveyor import Conveyor

    with Conveyor(url) as app:
        task = app.task(name="bench.noop")(_noop)
        app.backend  # noqa: B018 - the schema, untimed
        held = task.options(queue="hold")
        app.enqueue_many([held.prepare(*_arguments(i, with_args)[0], **_arguments(i, with_args)[1])
                          for i in range(batch)])  # warm-up, untimed
        started = time.perf_counter()
        for offset in range(0, many, batch):
            if with_args:
                app.enqueue_many([held.prepare(i, f"name-{i}", tags=["a", "b"])
                                  for i in range(offset, offset + batch)])
            else:
                app.enqueue_many([held.prepare() for _ in range(batch)])
        many_rate = many / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(one):
            held.enqueue()
        one_rate = one / (time.perf_counter() - started)
    return {"many": many_rate, "one": one_rate}


def _arguments(i: int, with_args: bool) -> tuple[tuple[object, ...], dict[str, object]]:
    return ((i, f"name-{i}"), {"tags": ["a", "b"]}) if with_args else ((), {})


def _noop(*args: object, **kwargs: object) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="the old tree's src/ folder")
    parser.add_argument("--new", required=True, help="the new tree's src/ folder")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--many", type=int, default=50_000, help="jobs enqueued in batches")
    parser.add_argument("--one", type=int, default=2_000, help="jobs enqueued one at a time")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--args", action="store_true", help="jobs with arguments")
    parser.add_argument("--rounds", type=int, default=1, help="times through the order")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(measure(options.child, options.many, options.one, options.batch,
                                 options.args)))
        return
    trees = {"old": str(Path(options.old).resolve()), "new": str(Path(options.new).resolve())}
    server = Server(options.admin_url) if options.backend == "postgresql" else None
    if server is not None:
        server.drop_leftovers()
    rates: dict[str, dict[str, list[float]]] = {t: {"many": [], "one": []} for t in trees}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index, tree in enumerate(ORDER * options.rounds):
                url = (server.create(f"ab_enqueue_{index}") if server is not None
                       else f"sqlite:///{Path(tmp) / f'ab-{index}.db'}")
                command = [sys.executable, __file__, "--old", "-", "--new", "-", "--child", url,
                           "--many", str(options.many), "--one", str(options.one),
                           "--batch", str(options.batch)] + (["--args"] if options.args else [])
                output = subprocess.run(command, env={**os.environ, "PYTHONPATH": trees[tree]},
                                        check=True, capture_output=True, text=True).stdout
                result = json.loads(output.strip().splitlines()[-1])
                for key in ("many", "one"):
                    rates[tree][key].append(result[key])
                print(f"{tree}: enqueue_many {result['many']:,.0f} jobs/s, one at a time "
                      f"{result['one']:,.0f} jobs/s", flush=True)
                if server is not None:
                    server.drop(url.rsplit("/", 1)[1])
    finally:
        if server is not None:
            server.drop_all()
    for key, what in (("many", f"enqueue_many incl. prepare, batches of {options.batch:,}"),
                      ("one", "enqueue one at a time")):
        old, new = (statistics.median(rates[t][key]) for t in ("old", "new"))
        runs = {t: ", ".join(f"{r:,.0f}" for r in rates[t][key]) for t in trees}
        print(f"| {options.backend}: {what}{' (with arguments)' if options.args else ''} | "
              f"{runs['old']} | {runs['new']} | {old:,.0f} | {new:,.0f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
