"""Every benchmark, conveyor beside Huey (SQLite) and Celery (Redis), in one table.

    bench/setup.sh                                  # once: bench/.venv with huey, celery, redis
    bench/.venv/bin/python bench/run_all.py         # full run (about 5 minutes), recorded
    bench/.venv/bin/python bench/run_all.py --quick --no-record

Per system, in order: enqueue one at a time (scratch store), enqueue many (into a held queue),
start the workers, open the gate as soon as they are ready and time the held jobs to the last
one done (repeated), idle CPU, idle pickup latency, and for conveyor worker memory over
100,000 more jobs. Then conveyor's claim cost with 1,000,000 queued jobs against 10,000.
Prints the table and appends it, with targets, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import claim_scaling
from common import (
    command_line,
    conveyor_revision,
    idle_cpu,
    machine,
    markdown_table,
    median,
    now_utc,
    percentile,
    record,
    tree_cpu_seconds,
    tree_rss,
    wait_until,
)
from frameworks import CeleryFramework, ConveyorFramework, Framework, HueyFramework

MiB = 1024 * 1024
SYSTEMS = ("conveyor", "huey-sqlite", "celery-redis")


@dataclass
class Config:
    enqueue_one: int = 5_000
    jobs: int = 20_000
    batch: int = 1_000
    repeats: int = 3
    latency_jobs: int = 200
    gap: float = 0.02
    idle_seconds: float = 5.0
    memory_jobs: int = 100_000
    workers: int = 2
    concurrency: int | None = None  # conveyor's default
    claim_small: int = 10_000
    claim_large: int = 1_000_000
    claim_jobs: int = 5_000
    claim_batch: int = 32
    claim_rounds: int = 5

    @classmethod
    def quick(cls) -> Config:
        return cls(enqueue_one=1_000, jobs=5_000, repeats=2, idle_seconds=3.0,
                   memory_jobs=20_000, claim_rounds=3, claim_jobs=3_000)


@dataclass
class Result:
    system: str
    settings: str = ""
    enqueue_many_how: str = ""
    enqueue_one: float = math.nan  # jobs/s
    enqueue_many_rates: list[float] = field(default_factory=list)
    startups: list[float] = field(default_factory=list)  # seconds, spawn -> ready
    process_rates: list[float] = field(default_factory=list)  # from ready (gate) to last done
    incl_startup_rates: list[float] = field(default_factory=list)  # from spawn to last done
    first_pickups: list[float] = field(default_factory=list)  # seconds, gate -> first done
    cpu_per_job: list[float] = field(default_factory=list)  # worker CPU seconds per job
    cpu_share: list[float] = field(default_factory=list)  # worker CPU / wall time (cores)
    latencies: list[float] = field(default_factory=list)  # seconds, enqueue call -> task start
    db_latencies: list[float] = field(default_factory=list)  # conveyor's started - enqueued
    idle_total: float = math.nan  # fraction of a core, all worker processes
    idle_max: float = math.nan  # the busiest single process
    rss_ready: float = math.nan  # MiB, all worker processes
    rss_after: float = math.nan
    memory_jobs: int = 0
    memory_rate: float = math.nan
    rss_before_memory: dict[int, int] = field(default_factory=dict)
    rss_after_memory: dict[int, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def enqueue_many(self) -> float:
        return median(self.enqueue_many_rates)

    @property
    def process_rate(self) -> float:
        return median(self.process_rates)

    @property
    def process_incl_startup(self) -> float:
        return median(self.incl_startup_rates)

    @property
    def startup_s(self) -> float:
        return median(self.startups)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def memory_growth(self) -> float:
        """The largest relative RSS growth of one worker process over the memory run."""
        growth = [self.rss_after_memory[pid] / before - 1
                  for pid, before in self.rss_before_memory.items()
                  if pid in self.rss_after_memory and before]
        return max(growth) if growth else math.nan


def log(message: str) -> None:
    print(message, flush=True)


def run_gated(fw: Framework, count: int, timeout: float) -> tuple[float, float]:
    """Release `count` held jobs to the running workers. Returns (seconds to the last one
    done, seconds to the first one seen done or started)."""
    fw.expect(count)
    fw.open_gate()
    opened = time.perf_counter()
    first = wait_until(fw.progressed, timeout, f"{fw.key}: first of {count:,} jobs",
                       check=fw.spawned.check_alive)
    done = wait_until(fw.drained, timeout, f"{fw.key}: {count:,} jobs",
                      check=fw.spawned.check_alive)
    return done - opened, first - opened


def run_system(fw: Framework, cfg: Config, *, memory: bool) -> Result:
    result = Result(fw.key, settings=fw.settings,
                    enqueue_many_how=fw.enqueue_many_how.format(batch=cfg.batch))
    timeout = max(120.0, cfg.jobs / 100)
    fw.setup()
    try:
        seconds = fw.enqueue_one(cfg.enqueue_one)
        result.enqueue_one = cfg.enqueue_one / seconds
        log(f"  enqueue one at a time: {result.enqueue_one:,.0f} jobs/s")
        roots: list[int] = []
        for repeat in range(cfg.repeats):
            if repeat:
                fw.stop_workers()  # each run starts its own workers, with the jobs waiting
            seconds = fw.enqueue_many(cfg.jobs)
            result.enqueue_many_rates.append(cfg.jobs / seconds)
            spawned = time.perf_counter()
            fw.start_workers()
            ready = wait_until(fw.ready, 120, f"{fw.key} workers to be ready",
                               check=fw.spawned.check_alive)
            roots = fw.spawned.pids
            result.startups.append(ready - spawned)
            if repeat == 0:
                result.rss_ready = sum(tree_rss(roots).values()) / MiB
            cpu_before = sum(tree_cpu_seconds(roots).values())
            seconds, first = run_gated(fw, cfg.jobs, timeout)
            finished = time.perf_counter()
            cpu = sum(tree_cpu_seconds(roots).values()) - cpu_before
            result.cpu_per_job.append(cpu / cfg.jobs)
            result.cpu_share.append(cpu / seconds)
            result.process_rates.append(cfg.jobs / seconds)
            result.incl_startup_rates.append(cfg.jobs / (finished - spawned))
            result.first_pickups.append(first)
            log(f"  run {repeat + 1}: enqueue many {result.enqueue_many_rates[-1]:,.0f} jobs/s; "
                f"workers ready after {result.startups[-1]:.2f} s; {cfg.jobs:,} jobs at "
                f"{result.process_rates[-1]:,.0f} jobs/s from ready "
                f"({result.incl_startup_rates[-1]:,.0f} incl. start-up; first done after "
                f"{first * 1000:.0f} ms; workers used {result.cpu_share[-1]:.2f} cores)")
        result.rss_after = sum(tree_rss(roots).values()) / MiB

        time.sleep(1.0)
        result.idle_total, result.idle_max = idle_cpu(roots, cfg.idle_seconds)
        log(f"  idle CPU: {result.idle_total * 100:.2f} % of a core (all worker processes)")

        result.latencies = measure_pickup(fw, cfg)
        log(f"  pickup latency: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms")
        if isinstance(fw, ConveyorFramework):
            result.db_latencies = fw.db_pickup_latencies()

        if memory:
            result.rss_before_memory = tree_rss(roots)
            fw.enqueue_many(cfg.memory_jobs)
            time.sleep(0.5)
            seconds, _ = run_gated(fw, cfg.memory_jobs, max(300.0, cfg.memory_jobs / 100))
            result.memory_jobs = cfg.memory_jobs
            result.memory_rate = cfg.memory_jobs / seconds
            time.sleep(0.5)
            result.rss_after_memory = tree_rss(roots)
            log(f"  {cfg.memory_jobs:,} more jobs at {result.memory_rate:,.0f} jobs/s; RSS "
                f"{sum(result.rss_before_memory.values()) / MiB:.1f} -> "
                f"{sum(result.rss_after_memory.values()) / MiB:.1f} MiB")
        expected = cfg.jobs * cfg.repeats + (cfg.memory_jobs if memory else 0)
        done = fw.succeeded_noops() if isinstance(fw, ConveyorFramework) else fw.done_marks()
        if done != expected:
            raise RuntimeError(f"{done} no-op jobs done, expected {expected}")
    finally:
        fw.stop_workers()
        fw.close()
    return result


def measure_pickup(fw: Framework, cfg: Config) -> list[float]:
    """Enqueue stamp jobs one at a time, `gap` apart, to idle workers: task start - enqueue."""
    sent: dict[int, float] = {}
    start = time.perf_counter()
    for tag in range(cfg.latency_jobs):
        delay = start + tag * cfg.gap - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[tag] = time.time()
        fw.enqueue_stamp(tag)
    wait_until(lambda: len(fw.stamps()) >= cfg.latency_jobs, 60, f"{fw.key} stamp jobs",
               interval=0.05, check=fw.spawned.check_alive)
    stamps = fw.stamps()
    return [stamps[tag] - sent[tag] for tag in sent]


# -- report ------------------------------------------------------------------------------------


def fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def ratio(ours: float, theirs: float) -> str:
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}x"


Row = tuple[str, Callable[[Result], float], str]


def main_table(results: dict[str, Result], cfg: Config,
               claims: tuple[claim_scaling.ScalingResult, claim_scaling.ScalingResult] | None
               ) -> str:
    rows_spec: list[Row] = [
        (f"enqueue one at a time, jobs/s ({cfg.enqueue_one:,} jobs)",
         lambda r: r.enqueue_one, ",.0f"),
        (f"enqueue many, jobs/s ({cfg.jobs:,} jobs, median of {cfg.repeats})",
         lambda r: r.enqueue_many, ",.0f"),
        (f"process {cfg.jobs:,} queued no-ops, {cfg.workers} worker processes, jobs/s from "
         f"ready (median of {cfg.repeats})", lambda r: r.process_rate, ",.0f"),
        (f"process {cfg.jobs:,} queued no-ops, jobs/s incl. worker start-up",
         lambda r: r.process_incl_startup, ",.0f"),
        ("worker CPU per job while processing, us (all worker processes)",
         lambda r: median(r.cpu_per_job) * 1e6, ",.0f"),
        ("worker CPU while processing, cores busy (of 2)", lambda r: median(r.cpu_share),
         ".2f"),
        ("worker start-up to ready, s", lambda r: r.startup_s, ".2f"),
        (f"idle pickup latency p50, ms ({cfg.latency_jobs} jobs {cfg.gap * 1000:.0f} ms apart)",
         lambda r: r.p50_ms, ".2f"),
        ("idle pickup latency p99, ms", lambda r: r.p99_ms, ".2f"),
        (f"idle CPU, all worker processes, % of a core ({cfg.idle_seconds:.0f} s)",
         lambda r: r.idle_total * 100, ".2f"),
        ("worker RSS when ready, MiB (all processes)", lambda r: r.rss_ready, ".1f"),
        (f"worker RSS after {cfg.jobs:,} jobs + idle + pickup, MiB (all processes)",
         lambda r: r.rss_after, ".1f"),
    ]
    rows = []
    ours = results.get("conveyor")
    for label, get, spec in rows_spec:
        values = {name: get(res) if res.error is None else math.nan
                  for name, res in results.items()}
        mine = values.get("conveyor", math.nan)
        rows.append([label, *(fmt(values.get(name, math.nan), spec) for name in SYSTEMS),
                     ratio(mine, values.get("huey-sqlite", math.nan)),
                     ratio(mine, values.get("celery-redis", math.nan))])
    if ours is not None and ours.error is None and ours.memory_jobs:
        before = sum(ours.rss_before_memory.values()) / MiB
        after = sum(ours.rss_after_memory.values()) / MiB
        rows.append([f"conveyor worker RSS before -> after {ours.memory_jobs:,} more jobs, MiB",
                     f"{before:.1f} -> {after:.1f}", "-", "-", "-", "-"])
        rows.append([f"process {ours.memory_jobs:,} no-ops, jobs/s",
                     fmt(ours.memory_rate, ",.0f"), "-", "-", "-", "-"])
    if claims is not None:
        small, large = claims
        rows.append([f"claim+ack, {small.backlog:,} queued, jobs/s (batch {cfg.claim_batch}, "
                     f"best of {cfg.claim_rounds})",
                     fmt(small.rate, ",.0f"), "-", "-", "-", "-"])
        rows.append([f"claim+ack, {large.backlog:,} queued, jobs/s",
                     fmt(large.rate, ",.0f"), "-", "-", "-", "-"])
        rows.append(["claim rate ratio, 1M / 10k", f"{large.rate / small.rate:.2f}",
                     "-", "-", "-", "-"])
    return markdown_table(
        ["workload", *SYSTEMS, "conveyor/huey", "conveyor/celery"], rows)


def targets_table(results: dict[str, Result], cfg: Config,
                  claims: tuple[claim_scaling.ScalingResult, claim_scaling.ScalingResult] | None
                  ) -> str:
    nan = math.nan
    ours = results.get("conveyor")
    ok = ours is not None and ours.error is None

    def peer(name: str, get: Callable[[Result], float]) -> float:
        res = results.get(name)
        return get(res) if res is not None and res.error is None else nan

    rate = ours.process_rate if ok and ours else nan
    rows: list[tuple[str, str, float, Callable[[float], bool], str]] = [
        (f"process {cfg.jobs:,} no-ops, {cfg.workers} workers", ">= 10,000 jobs/s", rate,
         lambda v: v >= 10_000, ",.0f"),
        ("  vs huey-sqlite", ">= 5x", rate / peer("huey-sqlite", lambda r: r.process_rate),
         lambda v: v >= 5, ".2f"),
        ("  vs celery-redis", ">= 10x", rate / peer("celery-redis", lambda r: r.process_rate),
         lambda v: v >= 10, ".2f"),
        ("enqueue one at a time", ">= 10,000 jobs/s", ours.enqueue_one if ok and ours else nan,
         lambda v: v >= 10_000, ",.0f"),
        ("enqueue_many", ">= 100,000 jobs/s", ours.enqueue_many if ok and ours else nan,
         lambda v: v >= 100_000, ",.0f"),
        ("idle pickup p50", "<= 2 ms", ours.p50_ms if ok and ours else nan, lambda v: v <= 2,
         ".2f"),
        ("idle pickup p99", "<= 10 ms", ours.p99_ms if ok and ours else nan, lambda v: v <= 10,
         ".2f"),
        ("idle worker CPU (busiest worker process)", "< 1 % of a core",
         ours.idle_max * 100 if ok and ours else nan, lambda v: v < 1, ".2f"),
        (f"worker RSS over {cfg.memory_jobs:,} more jobs (largest growth of one process)",
         "flat (< 5 %)",
         ours.memory_growth * 100 if ok and ours else nan, lambda v: v < 5, "+.1f"),
    ]
    if claims is not None:
        rows.append(("claim rate with 1M queued / with 10k", ">= 0.70",
                     claims[1].rate / claims[0].rate, lambda v: v >= 0.7, ".2f"))
    table_rows = []
    for label, target, value, passes, spec in rows:
        verdict = "n/a" if math.isnan(value) else ("yes" if passes(value) else "NO")
        suffix = " %" if "%" in target else ("x" if target.endswith("x") else "")
        table_rows.append([label, target, fmt(value, spec) + suffix, verdict])
    return markdown_table(["target (conveyor)", "target", "actual", "met"], table_rows)


def notes(results: dict[str, Result], cfg: Config) -> str:
    lines = [f"- {cfg.workers} worker processes each; jobs are no-ops; all state on this "
             "machine (SQLite files under /tmp, Redis on 127.0.0.1)."]
    for name in SYSTEMS:
        res = results.get(name)
        if res is None:
            continue
        if res.error is not None:
            lines.append(f"- {name}: not measured: {res.error}")
            continue
        lines.append(f"- {name}: {res.settings}. Enqueue many: {res.enqueue_many_how}. "
                     "Runs, jobs/s from ready: "
                     f"{', '.join(f'{r:,.0f}' for r in res.process_rates)}; first job done "
                     f"{', '.join(f'{s * 1000:.0f}' for s in res.first_pickups)} ms after the "
                     "gate opened.")
    ours = results.get("conveyor")
    if ours is not None and ours.error is None and ours.db_latencies:
        lines.append(
            "- conveyor pickup as conveyor records it (started_at - enqueued_at, stamped at "
            f"claim): p50 {percentile(ours.db_latencies, 50) * 1000:.2f} ms, p99 "
            f"{percentile(ours.db_latencies, 99) * 1000:.2f} ms. The table's latency is the "
            "same for every system: from just before the enqueue call to the first line of "
            "the task, so it includes the enqueue's own commit or round trip.")
        if ours.rss_before_memory:
            per = ", ".join(
                f"{ours.rss_before_memory[pid] / MiB:.1f} -> "
                f"{ours.rss_after_memory.get(pid, 0) / MiB:.1f}"
                for pid in ours.rss_before_memory)
            lines.append(f"- conveyor RSS per worker process over the memory run, MiB: {per}.")
    lines.append("- Done means: conveyor, the outcome committed (nothing queued or running); "
                 "huey and celery, the task function returned (a signal handler counts it). "
                 "Every system's count of finished no-ops is checked at the end.")
    lines.append("- Worker CPU counts the worker processes and their children only: for "
                 "celery-redis it leaves out redis-server; conveyor and huey do their storage "
                 "work inside the workers.")
    lines.append("- Ratios are conveyor / peer: above 1 is better for rates, below 1 is "
                 "better for times, latency, CPU and memory.")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (under 3 minutes)")
    parser.add_argument("--only", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    parser.add_argument("--no-claim", action="store_true", help="skip the 1M claim benchmark")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/RESULTS.md")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15",
                        help="Redis DB used (and flushed) by the celery runs")
    parser.add_argument("--jobs", type=int, help="no-op jobs per processing run")
    parser.add_argument("--repeats", type=int, help="processing runs per system")
    parser.add_argument("--conveyor-concurrency", type=int,
                        help="threads per conveyor worker [default: conveyor's default]")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    # SIGTERM runs the clean-up (finally blocks, atexit) that stops every worker started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    cfg = Config.quick() if options.quick else Config()
    if options.jobs:
        cfg.jobs = options.jobs
    if options.repeats:
        cfg.repeats = options.repeats
    if options.conveyor_concurrency:
        cfg.concurrency = options.conveyor_concurrency
    wanted = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(wanted) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown systems: {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    when = now_utc()
    load = os.getloadavg()
    revision = conveyor_revision()
    if load[0] > 0.5:
        log(f"note: load average {load[0]:.2f} at start; figures will be noisy")
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    results: dict[str, Result] = {}
    claim_error: str | None = None
    try:
        for name in wanted:
            log(f"{name}:")
            try:
                fw: Framework
                if name == "conveyor":
                    fw = ConveyorFramework(workdir, cfg.workers, concurrency=cfg.concurrency,
                                           batch=cfg.batch)
                elif name == "huey-sqlite":
                    fw = HueyFramework(workdir, cfg.workers)
                else:
                    fw = CeleryFramework(workdir, cfg.workers, redis_url=options.redis_url)
                results[name] = run_system(fw, cfg, memory=name == "conveyor")
                results[name].settings = fw.settings  # as the workers reported themselves
            except Exception as exc:
                traceback.print_exc()
                results[name] = Result(name, error=f"{type(exc).__name__}: {exc}")
        claims = None
        if not options.no_claim:
            log("conveyor claim cost vs backlog:")
            try:
                claims = claim_scaling.run(cfg.claim_small, cfg.claim_large, cfg.claim_jobs,
                                           cfg.claim_batch, cfg.claim_rounds)
                log(claim_scaling.describe(*claims, cfg.claim_jobs, cfg.claim_batch))
            except Exception as exc:
                traceback.print_exc()
                claim_error = f"{type(exc).__name__}: {exc}"
    finally:
        if options.keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.perf_counter() - started
    text = "\n\n".join([
        f"## {when}: run_all{' --quick' if options.quick else ''}",
        f"Machine: {machine()}. Load average at start {load[0]:.2f}. Took {elapsed:.0f} s. "
        f"conveyor at {revision}.",
        f"`{command_line()}`",
        main_table(results, cfg, claims),
        targets_table(results, cfg, claims),
        notes(results, cfg) + (f"\n- claim scaling: not measured: {claim_error}"
                               if claim_error else ""),
    ])
    print()
    print(text)
    if not options.no_record:
        record(text)
        log(f"\nappended to {Path('bench/RESULTS.md')}")
    if claim_error or any(res.error for res in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
