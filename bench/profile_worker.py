"""Where a conveyor worker's time goes: py-spy samples one of W workers draining N no-ops.

Needs py-spy (in the bench virtualenv: bench/setup.sh). Same set-up as run_all's processing
run: jobs held, workers started, py-spy attached to worker 0, gate opened, sampled until the
last job is done. Prints time per thread, and the top functions by self and inclusive time.

    bench/.venv/bin/python bench/profile_worker.py --jobs 20000
"""

from __future__ import annotations

import argparse
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
    wait_until,
)
from frameworks import ConveyorFramework

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


def state_of(frames: list[str]) -> str:
    """What a sampled thread was doing, from its native + Python stack (--native --idle)."""
    text = ";".join(frames)
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
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    options = parser.parse_args()

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy not found: run bench/setup.sh and use bench/.venv/bin/python")
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-profile-"))
    fw = ConveyorFramework(workdir, options.workers, concurrency=options.concurrency)
    spy: subprocess.Popen[bytes] | None = None
    try:
        fw.setup()
        fw.enqueue_many(options.jobs)
        fw.start_workers()
        wait_until(fw.ready, 60, "workers", check=fw.spawned.check_alive)
        command = [py_spy, "record", "--pid", str(fw.spawned.pids[0]), "--format", "raw",
                   "--threads", "--rate", str(options.rate), "--output", options.out]
        for flag in ("gil", "native", "idle"):
            if getattr(options, flag):
                command.append(f"--{flag}")
        if not options.native:
            command.append("--nonblocking")  # do not pause the worker to sample it
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # let py-spy attach
        fw.open_gate()
        opened = time.perf_counter()
        done = wait_until(fw.drained, 300, "jobs", check=fw.spawned.check_alive)
        rate = options.jobs / (done - opened)
        spy.send_signal(signal.SIGINT)
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
        shutil.rmtree(workdir, ignore_errors=True)

    text = (f"### {now_utc()}: worker profile, {machine()}, conveyor at "
            f"{conveyor_revision()}\n\n`{command_line()}`\n\n"
            f"{options.jobs:,} no-ops; {fw.settings}; {rate:,.0f} jobs/s while sampled; "
            f"worker 0 sampled by py-spy at {options.rate}/s{_flags(options)}; raw stacks in "
            f"{options.out}\n\n{summarise(Path(options.out), options.top)}")
    print(text)
    if options.record:
        record(text)


if __name__ == "__main__":
    main()
