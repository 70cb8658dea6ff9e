"""Retention soak: run many no-op jobs through 2 worker processes on one SQLite file whose app
keeps succeeded jobs 60 s, and sample the size of the database and its WAL: with the pruner
at work the files stop growing once the first jobs are a minute old.

Jobs are enqueued in waves (by default 20 waves of 10,000, one every 15 s: 200,000 jobs over
5 minutes); after the last wave it waits until every job ran and the pruner had time to catch
up (keep + prune period + 15 s), then stops its workers. Bounded: --max-minutes (default 15)
stops everything whatever happened. Not a test, not run in CI.

The pruner's period is its module constant `conveyor.worker.duties.pruner.PRUNE_EVERY` (60 s);
--prune-every sets it in the soak's worker processes only (the benchmark's knob, not a
setting).

    .venv/bin/python bench/retention_soak.py                        # ~7 minutes
    .venv/bin/python bench/retention_soak.py --waves 4 --wave-size 5000 --interval 5
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.backends import resolve_url

KEEP = float(os.environ.get("SOAK_KEEP_SUCCEEDED", "60"))
app = Conveyor(keep_succeeded=KEEP)  # URL from $CONVEYOR_URL (main sets it)


@app.task(name="soak.noop")
def noop() -> None:
    return None


def tune() -> None:
    """In a worker process: the pruner's period from $SOAK_PRUNE_EVERY."""
    from conveyor.worker.duties import pruner

    pruner.PRUNE_EVERY = float(os.environ["SOAK_PRUNE_EVERY"])


def mib(path: Path) -> float:
    try:
        return path.stat().st_size / 2**20
    except FileNotFoundError:
        return 0.0


def sample(db: Path, started: float, enqueued: int) -> dict[str, float]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        states = dict(conn.execute("SELECT state, count(*) FROM conveyor_jobs GROUP BY state"))
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    waiting = states.get("queued", 0) + states.get("running", 0)
    return {"t": time.monotonic() - started, "enqueued": enqueued,
            "done": enqueued - waiting, "rows": sum(states.values()),
            "waiting": waiting, "db": mib(db), "wal": mib(Path(f"{db}-wal")),
            "free_pct": 100.0 * free / pages if pages else 0.0}


def show(row: dict[str, float]) -> str:
    return (f"| {row['t']:5.0f} | {row['enqueued']:9,.0f} | {row['done']:9,.0f} "
            f"| {row['rows']:8,.0f} | {row['db']:7.1f} | {row['wal']:6.1f} "
            f"| {row['free_pct']:5.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waves", type=int, default=20)
    parser.add_argument("--wave-size", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between waves")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prune-every", type=float, default=60.0)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--max-minutes", type=float, default=15.0)
    options = parser.parse_args()
    deadline = time.monotonic() + options.max_minutes * 60

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.db"
        os.environ["CONVEYOR_URL"] = f"sqlite:///{db}"  # for the workers
        app.url = resolve_url(os.environ["CONVEYOR_URL"])  # this app was made at import
        here = str(Path(__file__).resolve().parent)
        env = dict(os.environ, SOAK_PRUNE_EVERY=str(options.prune_every),
                   PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
        command = [sys.executable, "-c", "import retention_soak; retention_soak.tune(); "
                   "from conveyor.cli import main; main()", "worker", "-A", "retention_soak:app",
                   "-c", "4", "--log-level", "warning"]
        app.backend  # noqa: B018  (create the file before the workers start)
        procs = []
        for index in range(options.workers):
            with open(Path(tmp) / f"worker{index}.log", "wb") as log:
                procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        started = time.monotonic()
        rows: list[dict[str, float]] = []
        print(f"keep_succeeded={KEEP:g}s prune every {options.prune_every:g}s, "
              f"{options.waves} waves of {options.wave_size:,} every {options.interval:g}s, "
              f"{options.workers} workers x 4 threads")
        print("| t (s) | enqueued | done | rows | db MiB | wal MiB | free % |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        try:
            enqueued = 0
            next_wave = next_sample = started
            settle_until: float | None = None
            while time.monotonic() < deadline:
                now = time.monotonic()
                if enqueued < options.waves * options.wave_size and now >= next_wave:
                    for _ in range(0, options.wave_size, 5000):
                        app.enqueue_many([noop.prepare() for _ in range(5000)])
                    enqueued += options.wave_size
                    next_wave += options.interval
                if now >= next_sample:
                    rows.append(sample(db, started, enqueued))
                    print(show(rows[-1]), flush=True)
                    next_sample += options.sample_every
                    if any(proc.poll() is not None for proc in procs):
                        raise SystemExit("a worker exited early: "
                                         + (Path(tmp) / "worker0.log").read_text()[-2000:])
                    if (settle_until is None and enqueued == options.waves * options.wave_size
                            and rows[-1]["waiting"] == 0):
                        settle_until = now + KEEP + options.prune_every + 15
                if settle_until is not None and now >= settle_until:
                    break
                time.sleep(0.2)
            else:
                print(f"stopped at --max-minutes {options.max_minutes:g}")
            rows.append(sample(db, started, enqueued))
            print(show(rows[-1]))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            app.close()
        first_minute = [row for row in rows if row["t"] <= KEEP + options.prune_every + 10]
        later = rows[len(first_minute):]
        if later:
            print(f"db size: max {max(r['db'] for r in first_minute):.1f} MiB within the "
                  f"first {KEEP + options.prune_every + 10:g} s, "
                  f"max {max(r['db'] for r in later):.1f} MiB after; "
                  f"WAL max {max(r['wal'] for r in rows):.1f} MiB; "
                  f"rows max {max(r['rows'] for r in rows):,.0f}")


if __name__ == "__main__":
    main()
