"""Where a conveyor worker's time goes: py-spy samples one of W workers draining N no-ops.

Needs py-spy (in the bench virtualenv: bench/setup.sh). Same set-up as run_all's processing
run: jobs held, workers started, py-spy attached to worker 0, gate opened, sampled until the
last job is done. Prints time per thread, and the top functions by self and inclusive time.

    bench/.venv/bin/python bench/profile_worker.py --jobs 20000
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import (
    command_line,
    conveyor_revision,
    machine,
    markdown_table,
    now_utc,
    record,
    tree_cpu_seconds,
    wait_until,
)
from frameworks import ConveyorFramework, ConveyorPgFramework
from pg import cpu_delta

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`."""
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/lib/python3.":
                file = "stdlib:" + file.split("/", 1)[-1]
            break
    return f"{match['func']} ({file})"


PG_WAIT = "waiting for PostgreSQL (a round trip: network, server work, commit's WAL flush)"


def state_of(frames: list[str]) -> str:
    """What a sampled thread was doing, from its native + Python stack (--native --idle)."""
    text = ";".join(frames)
    if "psycopg" in text and "_listen" not in text:
        # psycopg's C wait (or the Python one) on the server's socket.
        if any(marker in text for marker in ("poll (libc", "epoll_wait", "select (libc",
                                             "wait_c (", "wait_epoll", "wait_poll",
                                             "Connection.wait (", "wait_select", "__poll",
                                             "ppoll")):
            return PG_WAIT
        if "libpq" in text or "pq.abi3" in text or "_psycopg" in text:
            return "running psycopg / libpq (C)"
    if "_listen" in text and "psycopg" in text:
        return "waiting for work (event, queue, lock, sleep)"  # the LISTEN connection
    sleeping = any(marker in text for marker in ("clock_nanosleep", "time_sleep", "usleep"))
    if "sqlite3InvokeBusyHandler" in text or (
        sleeping and any(marker in text for marker in ("_begin", "_transaction"))
    ):
        return "waiting for the SQLite write lock (busy sleep; another process holds it)"
    if "fdatasync" in text or "fsync (" in text:
        return "fsync"
    if "libsqlite3" in text or "sqlite3_step" in text:
        return "running SQLite"
    for index, frame in enumerate(frames):
        if frame.startswith("pthread_cond_timedwait"):
            before = frames[index - 1] if index else ""
            if "acquire_lock" not in before:
                return "waiting for the GIL"
    if any(marker in text for marker in ("PyThread_acquire_lock_timed", "Event.wait",
                                         "Condition.wait", "SimpleQueue_get", "sleep (")):
        return "waiting for work (event, queue, lock, sleep)"
    return "running Python (or C outside SQLite)"


def summarise(raw: Path, top: int) -> str:
    states: Counter[tuple[str, str]] = Counter()
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = active = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames and frames[0].startswith("thread ("):
            thread = frames.pop(0)
        frames = [short(f) for f in frames if not f.startswith("process ")]
        total += count
        state = state_of(frames)
        threads[_thread_name(thread, frames)] += count
        states[(_thread_name(thread, frames), state)] += count
        if state.startswith("waiting for work"):
            continue  # where the busy time goes, below
        active += count
        named = [frame for frame in frames if not frame.startswith("0x")]
        if named:
            self_time[named[-1]] += count
        for name in set(named):
            if "(conveyor/" in name and "(conveyor/cli/" not in name \
                    and "__main__" not in name:
                inclusive[name] += count
    if not total:
        return "no samples (is py-spy allowed to attach? try running as root)"

    def table(counter: Counter[str], title: str, of: int, label: str) -> str:
        rows = [[name, f"{n / of * 100:.1f} %"] for name, n in counter.most_common(top)]
        return markdown_table([title, label], rows)

    state_rows = [[name, state, f"{n / threads[name] * 100:.1f} %", f"{n / total * 100:.1f} %"]
                  for (name, state), n in sorted(states.items(),
                                                 key=lambda item: (-threads[item[0][0]],
                                                                   -item[1]))]
    return "\n\n".join([
        f"{total:,} samples",
        markdown_table(["thread", "state (meaningful with --native --idle)", "of thread",
                        "of samples"], state_rows, right=[False, False, True, True]),
        table(threads, "thread", total, "of samples"),
        f"{active:,} samples not waiting for work (running, or waiting for the GIL or the "
        "write lock):",
        table(self_time, "self time: function", active or 1, "of those"),
        table(inclusive, "inclusive time: conveyor function", active or 1, "of those"),
    ])


def _thread_name(thread: str, frames: list[str]) -> str:
    """`thread (123): conveyor-slot-2` -> `conveyor-slot-N`."""
    name = thread.split("): ", 1)[1] if "): " in thread else thread
    return re.sub(r"\d+$", "N", name)


def claim_rounds(fw: ConveyorFramework) -> str:
    """Claim rounds read back from the jobs table: the jobs one claim took share its
    started_at (one clock reading per claim statement), per worker."""
    rows = fw._rows(
        "SELECT worker, started_at, count(*) FROM conveyor_jobs "
        "WHERE task = 'bench.noop' AND state = 'succeeded' GROUP BY 1, 2 ORDER BY 1, 2")
    sizes = [int(n) for _, _, n in rows]
    gaps: list[float] = []
    for (worker, at, _), (next_worker, next_at, _) in itertools.pairwise(rows):
        if worker == next_worker:
            gaps.append(next_at - at)
    if not sizes:
        return ""
    ordered = sorted(gaps) or [0.0]

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1e3

    full = sum(1 for n in sizes if n >= max(sizes))
    return (f"\n\nClaim rounds (jobs sharing a worker and a started_at): {len(sizes):,}, "
            f"{sum(sizes) / len(sizes):.1f} jobs each on average (largest {max(sizes)}, "
            f"{full / len(sizes) * 100:.0f} % of rounds that large); time from one claim to "
            f"the same worker's next: p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms.")


def round_trip_costs(db: object, samples: int = 300) -> str:
    """What one statement costs from a client here: a read, a one-row write committed with
    the WAL flushed (the default), and the same write with synchronous_commit off."""
    from pg import Database

    assert isinstance(db, Database)
    db.execute("CREATE TABLE IF NOT EXISTS bench_rtt (id int PRIMARY KEY, n bigint)")
    db.execute("INSERT INTO bench_rtt VALUES (1, 0) ON CONFLICT DO NOTHING")

    def timed(query: str) -> float:
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            db.execute(query)
            times.append(time.perf_counter() - started)
        return sorted(times)[len(times) // 2] * 1e3

    update = "UPDATE bench_rtt SET n = n + 1 WHERE id = 1"
    read = timed("SELECT 1")
    synced = timed(update)
    db.execute("SET synchronous_commit = off")
    unsynced = timed(update)
    db.execute("SET synchronous_commit = on")
    db.execute("DROP TABLE bench_rtt")
    return (f"\n\nOne statement from a client here (median of {samples}): a read (SELECT 1) "
            f"{read:.3f} ms; a one-row UPDATE committed {synced:.3f} ms; the same with "
            f"synchronous_commit off {unsynced:.3f} ms, so waiting for the WAL flush costs "
            f"{synced - unsynced:.3f} ms per commit.")


REFERENCE = """
import concurrent.futures, resource, sys
calls = int(sys.argv[1])
def noop(): return None
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda _: noop(), range(1000)))  # threads started, code warm
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before = usage.ru_utime + usage.ru_stime
    for future in [pool.submit(noop) for _ in range(calls)]:
        future.result()
    usage = resource.getrusage(resource.RUSAGE_SELF)
print((usage.ru_utime + usage.ru_stime - before) / calls * 1e6)
"""


def reference_cost(calls: int = 100_000, runs: int = 3) -> float:
    """CPU a call of a no-op through a plain ThreadPoolExecutor(16), us (median of `runs`):
    this machine's speed right now. The worker's CPU a job over this is comparable from
    day to day on a machine whose speed moves 2-3x between boots, as a bare figure is not."""
    costs = sorted(float(subprocess.run([sys.executable, "-c", REFERENCE, str(calls)],
                                        capture_output=True, text=True, check=True).stdout)
                   for _ in range(runs))
    return costs[len(costs) // 2]


def _flags(options: argparse.Namespace) -> str:
    flags = [flag for flag in ("gil", "native", "idle") if getattr(options, flag)]
    return f" (--{', --'.join(flags)})" if flags else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, help="[default: conveyor's default]")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL")
    parser.add_argument("--native", action="store_true",
                        help="include C frames (SQLite, locks); pauses the worker per sample")
    parser.add_argument("--idle", action="store_true", help="include idle (waiting) threads")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) /
                                             "conveyor-worker-profile.txt"),
                        help="raw (collapsed stacks) output of py-spy")
    parser.add_argument("--postgres", action="store_true",
                        help="workers on PostgreSQL (a database conveyor_bench_conveyor_pg, "
                        "dropped after)")
    parser.add_argument("--pg-url", default=None,
                        help="admin URL of a loopback PostgreSQL server [default: "
                        "postgresql://postgres@127.0.0.1:5432/postgres]")
    parser.add_argument("--pg-options", default="",
                        help="server settings for the workers' sessions, e.g. "
                        "'-c synchronous_commit=off' (diagnostics only)")
    parser.add_argument("--no-spy", action="store_true",
                        help="do not attach py-spy (rates and counts only)")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    options = parser.parse_args()

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy not found: run bench/setup.sh and use bench/.venv/bin/python")
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-profile-"))
    server = None
    fw: ConveyorFramework
    if options.postgres:
        from pg import DEFAULT_ADMIN_URL, Server

        server = Server(options.pg_url or DEFAULT_ADMIN_URL)
        server.drop_leftovers()  # of an interrupted earlier run
        # track_wal_io_timing: the time the workers' sessions spend flushing WAL at commit
        # shows in pg_stat_wal (only theirs: other sessions keep the server's setting).
        fw = ConveyorPgFramework(workdir, options.workers, server=server,
                                 concurrency=options.concurrency,
                                 worker_options=" ".join(["-c track_wal_io_timing=on",
                                                          options.pg_options]).strip())
    else:
        fw = ConveyorFramework(workdir, options.workers, concurrency=options.concurrency)
    spy: subprocess.Popen[bytes] | None = None
    counts = cpu_line = ""
    try:
        fw.setup()
        fw.enqueue_many(options.jobs)
        fw.prepare_run()
        fw.start_workers()
        wait_until(fw.ready, 60, "workers", check=fw.spawned.check_alive)
        time.sleep(fw.settle)
        if options.postgres:
            time.sleep(1.0)  # statistics of the idle workers flushed
            commits, syncs, ours = fw.db.commits(), fw.db.wal_syncs(), fw.db.statements
        if not options.no_spy:
            command = [py_spy, "record", "--pid", str(fw.spawned.pids[0]), "--format", "raw",
                       "--threads", "--rate", str(options.rate), "--output", options.out]
            for flag in ("gil", "native", "idle"):
                if getattr(options, flag):
                    command.append(f"--{flag}")
            if not options.native:
                command.append("--nonblocking")  # do not pause the worker to sample it
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # let py-spy attach
        cpu_before = sum(tree_cpu_seconds(fw.spawned.pids).values())
        server_before = fw.server_cpu()
        fw.open_gate()
        opened = time.perf_counter()
        done = wait_until(fw.drained, 300, "jobs", check=fw.spawned.check_alive)
        rate = options.jobs / (done - opened)
        worker_cpu = sum(tree_cpu_seconds(fw.spawned.pids).values()) - cpu_before
        server_cpu = cpu_delta(server_before, fw.server_cpu()) if options.postgres else 0.0
        per_job = worker_cpu / options.jobs * 1e6
        cpu_line = (f"\n\nCPU per job while processing: the {options.workers} worker processes "
                    f"{per_job:.0f} us"
                    + (", the PostgreSQL processes serving them "
                       f"{server_cpu / options.jobs * 1e6:.0f} us" if options.postgres else "")
                    + f"; together {(worker_cpu + server_cpu) / (done - opened):.2f} cores busy "
                    f"of {os.cpu_count()} (the rest of the machine: the driver's polling, "
                    "WAL writer, other tenants).")
        if spy is not None:
            spy.send_signal(signal.SIGINT)
        if options.postgres:
            time.sleep(1.5)  # the workers' statistics flushed (at most once a second)
            ours = fw.db.statements - ours
            commits = fw.db.commits() - commits - ours
            syncs_after, sync_ms_after = fw.db.wal_syncs()
            syncs, sync_ms = syncs_after - syncs[0], sync_ms_after - syncs[1]
            seconds = done - opened
            counts = (
                f"\n\nTransactions the {options.workers} workers committed while the "
                f"{options.jobs:,} jobs ran (pg_stat_database, less the driver's own "
                f"{ours:,} statements): {commits:,}, {options.jobs / max(commits, 1):.1f} jobs "
                f"per transaction, one every {seconds / max(commits, 1) * 1e3:.2f} ms overall "
                f"({seconds * options.workers / max(commits, 1) * 1e3:.2f} ms per worker). WAL "
                f"flushes, server-wide (pg_stat_wal): {syncs:,}, one per "
                f"{options.jobs / max(syncs, 1):.1f} jobs, {syncs / seconds:,.0f} per second; "
                f"the workers' sessions waited {sync_ms:,.0f} ms in them (track_wal_io_timing), "
                f"{sync_ms / max(syncs, 1):.3f} ms per flush, "
                f"{sync_ms / (seconds * 1e3 * options.workers) * 100:.0f} % of each worker's "
                "time if spread evenly.")
            counts += claim_rounds(fw)
            counts += round_trip_costs(fw.db)
        if spy is not None:
            _, err = spy.communicate(timeout=30)
            spy = None
            if not Path(options.out).exists():
                raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')}")
    finally:
        if spy is not None:
            spy.kill()
            spy.wait()
        fw.stop_workers()
        fw.close()
        if server is not None:
            server.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    reference = reference_cost()  # with the workers stopped
    cpu_line += (f" A no-op call through a plain ThreadPoolExecutor(16), just after: "
                 f"{reference:.1f} us of CPU; the workers' CPU a job is {per_job / reference:.1f}x "
                 "that.")
    sampled = ("not sampled" if options.no_spy else
               f"sampled; worker 0 sampled by py-spy at {options.rate}/s{_flags(options)} from "
               f"1 s before the gate opened; raw stacks in {options.out}")
    text = (f"### {now_utc()}: worker profile{' (PostgreSQL)' if options.postgres else ''}, "
            f"{machine()}, conveyor at {conveyor_revision()}\n\n`{command_line()}`\n\n"
            f"{options.jobs:,} no-ops; {fw.settings}; {rate:,.0f} jobs/s while {sampled}"
            f"{cpu_line}{counts}")
    if not options.no_spy:
        text += f"\n\n{summarise(Path(options.out), options.top)}"
    print(text)
    if options.record:
        record(text)


if __name__ == "__main__":
    main()
