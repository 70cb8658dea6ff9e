"""Process pool start-up: from launching a worker to the first line of a job already queued.

One `bench.stamp` job is queued (SQLite, a fresh file per run), then the worker is launched:
`conveyor worker --pool process -c 2` for each conveyor tree given, and (when bench/.venv has
huey) `huey_consumer -k process -w 2`. The job's code appends `time.time()` to
$BENCH_DIR/stamps; the figure is that minus the time just before the launch. Runs are
interleaved (old new huey, huey new old, ...), fresh processes each time, each launched once
the CPUs have been idle for half a second; medians reported. Linux only (/proc/stat).

    PYTHONPATH= bench/.venv/bin/python bench/process_startup.py \
        --tree before=/tmp/ps-old/src --tree after=src --runs 5 [--record]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, command_line, machine, markdown_table, now_utc, record
from common import median as median_of

HUEY = "huey"
LAUNCH_TIMEOUT = 60.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC",
                        help="a conveyor src/ folder to measure, e.g. after=src (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--no-huey", action="store_true")
    parser.add_argument("--record", action="store_true")
    options = parser.parse_args()
    trees = dict(parse_tree(spec) for spec in options.tree)
    if not trees:
        trees = {"this tree": str(HERE.parent / "src")}
    variants = list(trees)
    if not options.no_huey and huey_available():
        variants.append(HUEY)

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(options.runs):
        order = variants if run % 2 == 0 else variants[::-1]
        for name in order:
            wait_for_idle_cpus()
            if name == HUEY:
                taken = time_huey(options.concurrency)
            else:
                taken = time_conveyor(trees[name], options.concurrency)
            seconds[name].append(taken)
            print(f"run {run + 1} {name}: {taken * 1000:.0f} ms", flush=True)

    rows = [[name, ", ".join(f"{s * 1000:.0f}" for s in runs), f"{median_of(runs) * 1000:.0f}"]
            for name, runs in seconds.items()]
    table = markdown_table(["launch to first job line, ms", "runs", "median"], rows,
                           right=[False, False, True])
    print(table)
    if options.record:
        record(f"## {now_utc()}: process pool start-up\n\nMachine: {machine()}.\n\n"
               f"`{command_line()}`\n\n{table}")


def wait_for_idle_cpus(idle: float = 0.9, over: float = 0.5, patience: float = 120.0) -> None:
    """Wait until the CPUs were `idle` (a fraction) over `over` seconds: a start-up takes a
    fraction of a second, and anyone else's burst of work would be measured with it."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        before = cpu_times()
        time.sleep(over)
        after = cpu_times()
        total = sum(after) - sum(before)
        if total > 0 and (after[3] - before[3]) / total >= idle:
            return
    print("the machine is busy: measuring anyway", flush=True)


def cpu_times() -> list[int]:
    """The `cpu` line of /proc/stat: user nice system idle ... in clock ticks."""
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:]]


def parse_tree(spec: str) -> tuple[str, str]:
    name, _, src = spec.partition("=")
    if not src:
        raise SystemExit(f"--tree wants NAME=SRC, got {spec!r}")
    return name, str(Path(src).resolve())


def huey_available() -> bool:
    return (importlib.util.find_spec("huey") is not None
            and shutil.which("huey_consumer", path=str(Path(sys.executable).parent)) is not None)


def time_conveyor(src: str, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(tmp, src)
        env["CONVEYOR_URL"] = f"sqlite:///{tmp}/bench.db"
        enqueue = "from bench_app import stamp; stamp.enqueue(0)"
        # (it says it made a new database: not worth showing)
        subprocess.run([sys.executable, "-c", enqueue], env=env, check=True,
                       stderr=subprocess.DEVNULL)
        command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app",
                   "--pool", "process", "-c", str(concurrency), "--log-level", "warning"]
        return time_first_stamp(command, env, Path(tmp))


def time_huey(concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(tmp, None)
        env["BENCH_HUEY_QUEUE"] = "startup"
        env["BENCH_HUEY_DB"] = f"{tmp}/huey.db"
        enqueue = ("import bench_huey, os; "
                   "bench_huey.make_huey('startup', os.environ['BENCH_HUEY_DB'])[2](0)")
        subprocess.run([sys.executable, "-c", enqueue], env=env, check=True)
        consumer = str(Path(sys.executable).parent / "huey_consumer")
        command = [consumer, "bench_huey.huey", "-k", "process", "-w", str(concurrency),
                   "-q"]
        return time_first_stamp(command, env, Path(tmp))


def bench_env(tmp: str, src: str | None) -> dict[str, str]:
    """The bench folder (tasks, marks) and the conveyor tree on the path; marks go to tmp."""
    path = [str(HERE)] + ([src] if src else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), BENCH_DIR=tmp)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # every variant reads its own cached bytecode
    return env


def time_first_stamp(command: list[str], env: dict[str, str], folder: Path) -> float:
    """Launch `command`; seconds until the job's own stamp (its time.time()) was written."""
    stamps = folder / "stamps"
    with open(folder / "worker.log", "wb") as log:
        launched = time.time()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + LAUNCH_TIMEOUT
            while not (stamps.exists() and stamps.read_text().endswith("\n")):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = (folder / "worker.log").read_text()
                    raise SystemExit(f"no job ran: {command}\n{output}")
                time.sleep(0.002)
        finally:
            stop(process)
    _tag, at = stamps.read_text().split("\n")[0].split()
    return float(at) - launched


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's whole session (its pool children too), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the group id is its pid
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
