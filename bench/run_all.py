"""Every benchmark, conveyor beside its peers, in one table per backend.

    bench/setup.sh                                  # once: bench/.venv with the peers
    bench/.venv/bin/python bench/run_all.py         # SQLite: vs Huey and Celery (about 5 min)
    bench/.venv/bin/python bench/run_all.py --backend postgresql   # vs procrastinate, pgqueuer
    bench/.venv/bin/python bench/run_all.py --backend both --quick --no-record

Per system, in order: enqueue one at a time (scratch store), enqueue many (into a held queue),
start the workers, open the gate as soon as they are ready and time the held jobs to the last
one done (repeated), idle CPU, idle pickup latency, and for conveyor on SQLite worker memory
over 100,000 more jobs. Then conveyor's claim cost with 1,000,000 queued jobs against 10,000.
Prints each table and appends it, with the targets, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
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
from frameworks import (
    PG_SETTLE,
    CeleryFramework,
    ConveyorFramework,
    ConveyorPgFramework,
    Framework,
    HueyFramework,
    PgQueuerFramework,
    ProcrastinateFramework,
)
from pg import DEFAULT_ADMIN_URL, Server, cpu_delta

MiB = 1024 * 1024
SYSTEMS = ("conveyor", "huey-sqlite", "celery-redis")
PG_SYSTEMS = ("conveyor-pg", "procrastinate", "pgqueuer")
RESTART_RETRIES = 3


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

    @classmethod
    def smoke(cls) -> Config:
        """Every step, a few seconds in all: that the bench still runs (tests/), no figure."""
        return cls(enqueue_one=50, jobs=300, batch=100, repeats=1, latency_jobs=5, gap=0.01,
                   idle_seconds=0.3, memory_jobs=300, claim_small=300, claim_large=600,
                   claim_jobs=100, claim_rounds=1)


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
    pickup_split: list[tuple[float, float, float]] = field(default_factory=list)  # see notes
    idle_total: float = math.nan  # fraction of a core, all worker processes
    idle_max: float = math.nan  # the busiest single process
    rss_ready: float = math.nan  # MiB, all worker processes
    rss_after: float = math.nan
    memory_jobs: int = 0
    memory_rate: float = math.nan
    server_cpu_per_job: list[float] = field(default_factory=list)  # PostgreSQL backends
    server_idle: float = math.nan  # PostgreSQL backends' CPU while the workers idle (cores)
    rss_before_memory: dict[int, int] = field(default_factory=dict)
    rss_after_memory: dict[int, int] = field(default_factory=dict)
    error: str | None = None
    restarts: int = 0  # runs started over because the database server restarted

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
    opened, opened_at = time.perf_counter(), time.time()
    first = wait_until(fw.progressed, timeout, f"{fw.key}: first of {count:,} jobs",
                       check=fw.spawned.check_alive)
    done = wait_until(fw.drained, timeout, f"{fw.key}: {count:,} jobs",
                      interval=fw.poll_interval, check=fw.spawned.check_alive)
    last = fw.last_done_at()
    return (done - opened if last is None else last - opened_at), first - opened


def process_run(fw: Framework, cfg: Config, result: Result, repeat: int) -> list[int]:
    """One processing run: enqueue the held jobs, start the workers, open the gate when they
    are ready, time the jobs to the last one done. Leaves the workers running; returns them."""
    timeout = max(120.0, cfg.jobs / 100)
    seconds = fw.enqueue_many(cfg.jobs)
    fw.prepare_run()
    finished_before = fw.finished()
    spawned = time.perf_counter()
    fw.start_workers()
    ready = wait_until(fw.ready, 120, f"{fw.key} workers to be ready",
                       check=fw.spawned.check_alive)
    roots = fw.spawned.pids
    startup = ready - spawned
    if repeat == 0:
        result.rss_ready = sum(tree_rss(roots).values()) / MiB
    if fw.settle:
        time.sleep(fw.settle)  # not counted, not even in "incl. start-up"
    cpu_before = sum(tree_cpu_seconds(roots).values())
    server_before = fw.server_cpu()
    seconds_run, first = run_gated(fw, cfg.jobs, timeout)
    finished = time.perf_counter()
    cpu = sum(tree_cpu_seconds(roots).values()) - cpu_before
    server = cpu_delta(server_before, fw.server_cpu()) if server_before else math.nan
    result.rss_after = sum(tree_rss(roots).values()) / MiB  # the last run's stays
    done = fw.finished() - finished_before
    if done != cfg.jobs:
        raise RuntimeError(f"{fw.key}: {done} no-op jobs done in run {repeat + 1}, expected "
                           f"{cfg.jobs}")
    result.enqueue_many_rates.append(cfg.jobs / seconds)
    result.startups.append(startup)
    if server_before:
        result.server_cpu_per_job.append(server / cfg.jobs)
    result.cpu_per_job.append(cpu / cfg.jobs)
    result.cpu_share.append(cpu / seconds_run)
    result.process_rates.append(cfg.jobs / seconds_run)
    result.incl_startup_rates.append(cfg.jobs / (finished - spawned - fw.settle))
    result.first_pickups.append(first)
    server_note = (f"; server backends {result.server_cpu_per_job[-1] * 1e6:,.0f} us/job"
                   if server_before else "")
    log(f"  {fw.key} run {repeat + 1}: enqueue many {result.enqueue_many_rates[-1]:,.0f} "
        f"jobs/s; workers ready after {startup:.2f} s; {cfg.jobs:,} jobs at "
        f"{result.process_rates[-1]:,.0f} jobs/s from ready "
        f"({result.incl_startup_rates[-1]:,.0f} incl. start-up; first done after "
        f"{first * 1000:.0f} ms; workers used {result.cpu_share[-1]:.2f} cores{server_note})")
    return roots


def idle_and_pickup(fw: Framework, cfg: Config, result: Result, roots: list[int]) -> None:
    """Idle CPU of the running workers, then their pickup latency."""
    time.sleep(1.0)
    server_before = fw.server_cpu()
    result.idle_total, result.idle_max = idle_cpu(roots, cfg.idle_seconds)
    if server_before:
        result.server_idle = cpu_delta(server_before, fw.server_cpu()) / cfg.idle_seconds
    log(f"  {fw.key} idle CPU: {result.idle_total * 100:.2f} % of a core (all worker "
        "processes)")
    sent: dict[int, float] = {}
    result.latencies = measure_pickup(fw, cfg, sent)
    log(f"  {fw.key} pickup latency: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms")
    if isinstance(fw, ConveyorFramework):
        result.db_latencies = fw.db_pickup_latencies()
        stamps = fw.stamps()
        result.pickup_split = [(enqueued - sent[tag], started - enqueued, stamps[tag] - started)
                               for tag, enqueued, started in fw.stamp_records()
                               if tag in sent and tag in stamps]


def run_system(fw: Framework, cfg: Config, *, memory: bool) -> Result:
    result = Result(fw.key, settings=fw.settings,
                    enqueue_many_how=fw.enqueue_many_how.format(batch=cfg.batch))
    fw.setup()
    try:
        seconds = fw.enqueue_one(cfg.enqueue_one)
        result.enqueue_one = cfg.enqueue_one / seconds
        log(f"  enqueue one at a time: {result.enqueue_one:,.0f} jobs/s")
        roots: list[int] = []
        for repeat in range(cfg.repeats):
            if repeat:
                fw.stop_workers()  # each run starts its own workers, with the jobs waiting
            roots = process_run(fw, cfg, result, repeat)
        idle_and_pickup(fw, cfg, result, roots)

        if memory:
            result.rss_before_memory = tree_rss(roots)
            fw.enqueue_many(cfg.memory_jobs)
            time.sleep(0.5)
            finished_before = fw.finished()
            seconds, _ = run_gated(fw, cfg.memory_jobs, max(300.0, cfg.memory_jobs / 100))
            result.memory_jobs = cfg.memory_jobs
            result.memory_rate = cfg.memory_jobs / seconds
            time.sleep(0.5)
            result.rss_after_memory = tree_rss(roots)
            log(f"  {cfg.memory_jobs:,} more jobs at {result.memory_rate:,.0f} jobs/s; RSS "
                f"{sum(result.rss_before_memory.values()) / MiB:.1f} -> "
                f"{sum(result.rss_after_memory.values()) / MiB:.1f} MiB")
            done = fw.finished() - finished_before
            if done != cfg.memory_jobs:
                raise RuntimeError(f"{done} no-op jobs done in the memory run, expected "
                                   f"{cfg.memory_jobs}")
    finally:
        fw.stop_workers()
        fw.close()
    return result


def run_interleaved(names: Sequence[str], make: Callable[[str], Framework], cfg: Config,
                    epoch: Callable[[float], str] | None = None) -> dict[str, Result]:
    """The same steps as run_system, but interleaved across the systems so that drift in a
    shared machine's load hits all of them alike: every system's enqueue-one, then processing
    run 1 of each (in turn), run 2 of each (the order rotated), ..., then idle CPU and pickup
    latency of each with fresh workers. `epoch(wait)` tells when the database server last
    started (waiting up to `wait` seconds for it): a system whose connections predate a
    restart reconnects before its next step, and a step that fails because the server
    restarted meanwhile is done again, its leftover jobs discarded first; a step that fails
    otherwise drops that system (its error is reported)."""
    fws: dict[str, Framework] = {}
    results: dict[str, Result] = {}
    known: dict[str, str] = {}  # the server start each system's connections were made in

    def current(wait: float = 0.0) -> str:
        return epoch(wait) if epoch is not None else ""

    def step(name: str, what: str, action: Callable[[Framework], None]) -> None:
        if results[name].error is not None:
            return
        fw = fws[name]
        for attempt in range(RESTART_RETRIES + 1):
            began = current(120)
            if known.setdefault(name, began) != began:
                with contextlib.suppress(Exception):
                    fw.reconnect()  # its connections died with the server's restart
                known[name] = began
            try:
                action(fw)
                return
            except Exception as exc:
                traceback.print_exc()
                with contextlib.suppress(Exception):
                    fw.stop_workers()
                if epoch is not None and attempt < RESTART_RETRIES and current(120) != began:
                    log(f"  the server restarted during {name}'s {what} (someone else's "
                        "test): discarding its leftover jobs and doing it again")
                    results[name].restarts += 1
                    with contextlib.suppress(Exception):
                        fw.reconnect()
                    known[name] = current(120)
                    with contextlib.suppress(Exception):
                        fw.discard_pending()
                    continue
                results[name].error = f"{what}: {type(exc).__name__}: {exc}"
                return

    try:
        for name in names:
            log(f"{name}:")
            try:
                fws[name] = make(name)
                results[name] = Result(
                    name, settings=fws[name].settings,
                    enqueue_many_how=fws[name].enqueue_many_how.format(batch=cfg.batch))
            except Exception as exc:
                traceback.print_exc()
                results[name] = Result(name, error=f"{type(exc).__name__}: {exc}")
                continue

            def one(fw: Framework, name: str = name) -> None:
                fw.setup()
                seconds = fw.enqueue_one(cfg.enqueue_one)
                results[name].enqueue_one = cfg.enqueue_one / seconds
                log(f"  {name} enqueue one at a time: {results[name].enqueue_one:,.0f} jobs/s")

            step(name, "enqueue one at a time", one)
        order = [name for name in names if name in fws]
        for repeat in range(cfg.repeats):
            turn = order[repeat % len(order):] + order[:repeat % len(order)] if order else []
            for name in turn:
                def run(fw: Framework, name: str = name, repeat: int = repeat) -> None:
                    try:
                        process_run(fw, cfg, results[name], repeat)
                    finally:
                        fw.stop_workers()

                step(name, f"processing run {repeat + 1}", run)
        for name in order:
            def idle(fw: Framework, name: str = name) -> None:
                fw.start_workers()
                wait_until(fw.ready, 120, f"{name} workers to be ready",
                           check=fw.spawned.check_alive)
                time.sleep(fw.settle)
                idle_and_pickup(fw, cfg, results[name], fw.spawned.pids)
                fw.stop_workers()

            step(name, "idle CPU and pickup latency", idle)
            results[name].settings = fws[name].settings  # as the workers reported themselves
    finally:
        for fw in fws.values():
            with contextlib.suppress(Exception):
                fw.stop_workers()
            with contextlib.suppress(Exception):
                fw.close()
    return results


def measure_pickup(fw: Framework, cfg: Config,
                   sent: dict[int, float] | None = None) -> list[float]:
    """Enqueue stamp jobs one at a time, `gap` apart, to idle workers: task start - enqueue.
    `sent` gets each job's time just before its enqueue call."""
    fw.clear_stamps()
    sent = {} if sent is None else sent
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


def workload_rows(cfg: Config) -> list[Row]:
    """The rows every system gets, SQLite or PostgreSQL."""
    return [
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
        (f"worker RSS after {cfg.jobs:,} jobs, MiB (all processes)",
         lambda r: r.rss_after, ".1f"),
    ]


# Rows where a smaller figure is better (for picking the best peer).
LOWER_IS_BETTER = ("CPU", "latency", "start-up to ready", "RSS")


def main_table(results: dict[str, Result], cfg: Config,
               claims: tuple[claim_scaling.ScalingResult, claim_scaling.ScalingResult] | None
               ) -> str:
    rows_spec = workload_rows(cfg)
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
                 "Every system's count of finished no-ops is checked after every run.")
    lines.append("- Worker CPU counts the worker processes and their children only: for "
                 "celery-redis it leaves out redis-server; conveyor and huey do their storage "
                 "work inside the workers.")
    lines.append("- Ratios are conveyor / peer: above 1 is better for rates, below 1 is "
                 "better for times, latency, CPU and memory.")
    return "\n".join(lines)


# -- PostgreSQL report -----------------------------------------------------------------------


ClaimPair = tuple[claim_scaling.ScalingResult, claim_scaling.ScalingResult]


def _lower_is_better(label: str) -> bool:
    return any(word in label for word in LOWER_IS_BETTER) and "incl." not in label


def best_peer(label: str, values: dict[str, float]) -> float:
    peers = [values.get(name, math.nan) for name in PG_SYSTEMS[1:]]
    peers = [v for v in peers if not math.isnan(v)]
    if not peers:
        return math.nan
    return min(peers) if _lower_is_better(label) else max(peers)


def pg_table(results: dict[str, Result], cfg: Config, claims: ClaimPair | None) -> str:
    rows_spec = workload_rows(cfg)
    rows_spec.insert(6, ("PostgreSQL CPU per job while processing, us (server processes of "
                         "the workers' connections)",
                         lambda r: median(r.server_cpu_per_job) * 1e6, ",.0f"))
    rows_spec.insert(11, ("idle CPU, those server processes, % of a core",
                          lambda r: r.server_idle * 100, ".2f"))
    rows = []
    for label, get, spec in rows_spec:
        values = {name: get(res) if res.error is None else math.nan
                  for name, res in results.items()}
        mine = values.get("conveyor-pg", math.nan)
        rows.append([label, *(fmt(values.get(name, math.nan), spec) for name in PG_SYSTEMS),
                     ratio(mine, best_peer(label, values))])
    if claims is not None:
        small, large = claims
        rows.append([f"claim+ack, {small.backlog:,} queued, jobs/s (batch {cfg.claim_batch}, "
                     f"one process, best of {cfg.claim_rounds})",
                     fmt(small.rate, ",.0f"), "-", "-", "-"])
        rows.append([f"claim+ack, {large.backlog:,} queued, jobs/s",
                     fmt(large.rate, ",.0f"), "-", "-", "-"])
        rows.append(["claim rate ratio, 1M / 10k", f"{large.rate / small.rate:.2f}",
                     "-", "-", "-"])
    return markdown_table(["workload", *PG_SYSTEMS, "conveyor/best peer"], rows)


def pg_targets(results: dict[str, Result], claims: ClaimPair | None) -> str:
    ours = results.get("conveyor-pg")
    ok = ours is not None and ours.error is None
    peers = {name: results[name].process_rate for name in PG_SYSTEMS[1:]
             if name in results and results[name].error is None}
    faster = max(peers, key=lambda name: peers[name]) if peers else None
    rate = ours.process_rate if ok and ours else math.nan
    vs = rate / peers[faster] if faster else math.nan
    p50 = ours.p50_ms if ok and ours else math.nan
    rows: list[tuple[str, str, float, Callable[[float], bool], str, str]] = [
        (f"no-op processing vs the faster peer measured ({faster or 'none'})", ">= 2x", vs,
         lambda v: v >= 2, ".2f", "x"),
        ("idle pickup latency p50", "< 5 ms", p50, lambda v: v < 5, ".2f", " ms"),
    ]
    if claims is not None:
        rows.append(("claim rate with 1M queued / with 10k (as for SQLite)", ">= 0.70",
                     claims[1].rate / claims[0].rate, lambda v: v >= 0.7, ".2f", ""))
    table_rows = []
    for label, target, value, passes, spec, unit in rows:
        verdict = "n/a" if math.isnan(value) else ("yes" if passes(value) else "NO")
        table_rows.append([label, target, fmt(value, spec) + ("" if math.isnan(value) else unit),
                           verdict])
    return markdown_table(["goal (conveyor on PostgreSQL)", "target", "actual", "met"],
                          table_rows)


def pg_notes(results: dict[str, Result], cfg: Config, server_line: str) -> str:
    lines = [f"- {cfg.workers} worker processes each; jobs are no-ops; {server_line}. Each "
             "system gets fresh databases of its own on that server (`conveyor_bench_*`, "
             "dropped afterwards); before each processing run they are vacuumed and analysed, "
             "untimed, the same for every system.",
             "- The systems take turns, so drift in this shared machine's load hits all alike: "
             "enqueue one at a time for each, then processing run 1 of each, run 2 of each "
             "(order rotated), ..., then idle CPU and pickup latency of each with fresh "
             "workers. Workers of one system are stopped before the next one's start."]
    for name in PG_SYSTEMS:
        res = results.get(name)
        if res is None:
            continue
        if res.error is not None:
            lines.append(f"- {name}: not measured: {res.error}")
            continue
        restarts = (f" Started over {res.restarts} time(s): the server was restarted by "
                    "someone else's test during an earlier attempt." if res.restarts else "")
        lines.append(f"- {name}: {res.settings}. Enqueue many: {res.enqueue_many_how}. "
                     "Runs, jobs/s from ready: "
                     f"{', '.join(f'{r:,.0f}' for r in res.process_rates)}; first job done "
                     f"{', '.join(f'{s * 1000:.0f}' for s in res.first_pickups)} ms after the "
                     f"gate opened.{restarts}")
    ours = results.get("conveyor-pg")
    if ours is not None and ours.error is None and ours.db_latencies:
        lines.append(
            "- conveyor-pg pickup as conveyor records it (started_at - enqueued_at, both by "
            f"the database clock): p50 {percentile(ours.db_latencies, 50) * 1000:.2f} ms, p99 "
            f"{percentile(ours.db_latencies, 99) * 1000:.2f} ms. The table's latency is the "
            "same for every system: from just before the enqueue call to the first line of "
            "the task, so it includes the enqueue's own commit.")
        if ours.pickup_split:
            parts = [percentile([split[i] for split in ours.pickup_split], 50) * 1000
                     for i in range(3)]
            lines.append(
                "- conveyor-pg pickup in three parts, p50 each (time.time() and the database "
                f"clock are the same machine's clock): enqueue call to its INSERT {parts[0]:.2f} "
                f"ms; INSERT to the claim statement (the enqueue's commit, NOTIFY, the "
                f"listener waking the claim loop, the claim's start) {parts[1]:.2f} ms; claim "
                f"statement to the task's first line (the claim's commit, rows back, hand-off "
                f"to a pool thread) {parts[2]:.2f} ms.")
    lines.append("- Ready means the workers registered (conveyor_workers, procrastinate_workers) "
                 "or, for pgqueuer (no worker table), its factory ran; then "
                 f"{PG_SETTLE} s more before the gate opens so every worker is LISTENing "
                 "(timed from the gate; not counted in \"incl. start-up\" either). The gate "
                 "is one UPDATE plus the NOTIFY the system would have sent for new jobs.")
    lines.append("- Done means the outcome is committed in the database for every system: "
                 "conveyor, nothing queued or running; procrastinate, nothing todo or doing; "
                 "pgqueuer, no queued or picked row (a finished job's row is deleted and "
                 "logged). Finished no-ops are counted after every run (conveyor from its table, "
                 "the peers by a mark their task writes) and must match.")
    lines.append("- Worker CPU counts the worker processes only; the PostgreSQL row counts the "
                 "server processes serving the workers' connections (and the driver's polling "
                 "connection is left out), not the WAL writer or checkpointer.")
    lines.append("- Ratios are conveyor / the best peer on that row (the faster or the "
                 "smaller): above 1 is better for rates, below 1 for times, latency, CPU and "
                 "memory.")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite",
                        help="sqlite: conveyor vs huey and celery (the default); postgresql: "
                        "conveyor vs procrastinate and pgqueuer on one PostgreSQL server; both")
    parser.add_argument("--postgres", action="store_true", help="same as --backend postgresql")
    parser.add_argument("--quick", action="store_true", help="smaller counts (under 3 minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny counts, a few seconds: checks that the bench runs (the "
                             "test suite does this); its figures mean nothing")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {', '.join(SYSTEMS + PG_SYSTEMS)}")
    parser.add_argument("--no-claim", action="store_true", help="skip the 1M claim benchmark")
    parser.add_argument("--no-record", action="store_true",
                        help="print only; do not append to bench/RESULTS.md")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15",
                        help="Redis DB used (and flushed) by the celery runs")
    parser.add_argument("--pg-url", default=DEFAULT_ADMIN_URL,
                        help="a loopback PostgreSQL server to create (and drop) databases "
                        "conveyor_bench_* on [default: %(default)s]")
    parser.add_argument("--jobs", type=int, help="no-op jobs per processing run")
    parser.add_argument("--repeats", type=int, help="processing runs per system")
    parser.add_argument("--conveyor-concurrency", type=int,
                        help="threads per conveyor worker [default: conveyor's default]")
    parser.add_argument("--procrastinate-concurrency", type=int,
                        help="jobs at a time per procrastinate worker [default: its default, 1]")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    options = parser.parse_args(argv)
    if options.postgres:
        options.backend = "postgresql"
    if options.smoke:
        options.no_record = True  # its figures mean nothing
    return options


def build_config(options: argparse.Namespace) -> Config:
    cfg = Config.smoke() if options.smoke else Config.quick() if options.quick else Config()
    if options.jobs:
        cfg.jobs = options.jobs
    if options.repeats:
        cfg.repeats = options.repeats
    if options.conveyor_concurrency:
        cfg.concurrency = options.conveyor_concurrency
    return cfg


def run_systems(names: Sequence[str], make: Callable[[str], Framework], cfg: Config,
                memory_for: str | None) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for name in names:
        log(f"{name}:")
        try:
            fw = make(name)
            results[name] = run_system(fw, cfg, memory=name == memory_for)
            results[name].settings = fw.settings  # as the workers reported themselves
        except Exception as exc:
            traceback.print_exc()
            results[name] = Result(name, error=f"{type(exc).__name__}: {exc}")
    return results


def header(title: str, options: argparse.Namespace, started: float, when: str,
           load: tuple[float, float, float], revision: str) -> list[str]:
    return [
        f"## {when}: {title}{' --quick' if options.quick else ''}",
        f"Machine: {machine()}. Load average at start {load[0]:.2f} (1 min), {load[1]:.2f} "
        f"(5 min). Took {time.perf_counter() - started:.0f} s. conveyor at {revision}.",
        f"`{command_line()}`",
    ]


def run_sqlite_suite(options: argparse.Namespace, cfg: Config, wanted: list[str],
                     workdir: Path) -> tuple[str, bool]:
    started = time.perf_counter()
    when, load, revision = now_utc(), os.getloadavg(), conveyor_revision()
    if load[0] > 0.5:
        log(f"note: load average {load[0]:.2f} at start; figures will be noisy")

    def make(name: str) -> Framework:
        if name == "conveyor":
            return ConveyorFramework(workdir, cfg.workers, concurrency=cfg.concurrency,
                                     batch=cfg.batch)
        if name == "huey-sqlite":
            return HueyFramework(workdir, cfg.workers)
        return CeleryFramework(workdir, cfg.workers, redis_url=options.redis_url)

    results = run_systems(wanted, make, cfg, memory_for="conveyor")
    claims = None
    claim_error: str | None = None
    if not options.no_claim and "conveyor" in wanted:
        log("conveyor claim cost vs backlog:")
        try:
            claims = claim_scaling.run(cfg.claim_small, cfg.claim_large, cfg.claim_jobs,
                                       cfg.claim_batch, cfg.claim_rounds)
            log(claim_scaling.describe(*claims, cfg.claim_jobs, cfg.claim_batch))
        except Exception as exc:
            traceback.print_exc()
            claim_error = f"{type(exc).__name__}: {exc}"
    text = "\n\n".join([
        *header("run_all", options, started, when, load, revision),
        main_table(results, cfg, claims),
        targets_table(results, cfg, claims),
        notes(results, cfg) + (f"\n- claim scaling: not measured: {claim_error}"
                               if claim_error else ""),
    ])
    failed = bool(claim_error) or any(res.error for res in results.values())
    return text, failed


def run_postgres_suite(options: argparse.Namespace, cfg: Config, wanted: list[str],
                       workdir: Path) -> tuple[str, bool]:
    started = time.perf_counter()
    when, load, revision = now_utc(), os.getloadavg(), conveyor_revision()
    if load[0] > 0.5:
        log(f"note: load average {load[0]:.2f} at start; figures will be noisy")
    # A smoke run (the test suite) leaves other runs' databases alone, and names its own.
    server = Server(options.pg_url, tag=f"smoke{os.getpid()}_" if options.smoke else "")
    left = [] if options.smoke else server.drop_leftovers()
    if left:
        log(f"dropped databases an earlier run left behind: {', '.join(left)}")
    server_line = server.version()
    log(server_line)

    def make(name: str) -> Framework:
        if name == "conveyor-pg":
            return ConveyorPgFramework(workdir, cfg.workers, server=server,
                                       concurrency=cfg.concurrency, batch=cfg.batch)
        if name == "procrastinate":
            return ProcrastinateFramework(workdir, cfg.workers, server=server, batch=cfg.batch,
                                          concurrency=options.procrastinate_concurrency)
        return PgQueuerFramework(workdir, cfg.workers, server=server, batch=cfg.batch)

    claims = None
    claim_error: str | None = None
    try:
        results = run_interleaved(wanted, make, cfg, epoch=lambda wait: server.started_at(wait))
        if not options.no_claim and "conveyor-pg" in wanted:
            log("conveyor claim cost vs backlog, PostgreSQL:")
            for attempt in range(RESTART_RETRIES + 1):
                began = server.started_at(120)
                try:
                    claims = claim_scaling.run_postgres(
                        server, cfg.claim_small, cfg.claim_large, cfg.claim_jobs,
                        cfg.claim_batch, cfg.claim_rounds)
                    log(claim_scaling.describe(*claims, cfg.claim_jobs, cfg.claim_batch))
                    break
                except Exception as exc:
                    traceback.print_exc()
                    if attempt < RESTART_RETRIES and server.started_at(120) != began:
                        log("  the server restarted (someone else's test): again")
                        continue
                    claim_error = f"{type(exc).__name__}: {exc}"
                    break
    finally:
        server.drop_all()
    text = "\n\n".join([
        *header("run_all --backend postgresql", options, started, when, load, revision),
        pg_table(results, cfg, claims),
        pg_targets(results, claims),
        pg_notes(results, cfg, server_line) + (
            f"\n- claim scaling: not measured: {claim_error}" if claim_error else ""),
    ])
    failed = bool(claim_error) or any(res.error for res in results.values())
    return text, failed


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    # SIGTERM runs the clean-up (finally blocks, atexit) that stops every worker started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    cfg = build_config(options)
    suites: list[tuple[str, tuple[str, ...]]] = []
    if options.backend in ("sqlite", "both"):
        suites.append(("sqlite", SYSTEMS))
    if options.backend in ("postgresql", "both"):
        suites.append(("postgresql", PG_SYSTEMS))
    known = {name for _, systems in suites for name in systems}
    wanted_all = (known if options.only is None else
                  {name.strip() for name in options.only.split(",") if name.strip()})
    unknown = wanted_all - known
    if unknown:
        raise SystemExit(f"unknown systems for --backend {options.backend}: "
                         f"{', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    texts: list[str] = []
    failed = False
    try:
        for backend, systems in suites:
            wanted = [name for name in systems if name in wanted_all]
            if not wanted:
                continue
            runner = run_sqlite_suite if backend == "sqlite" else run_postgres_suite
            text, suite_failed = runner(options, cfg, wanted, workdir)
            failed = failed or suite_failed
            print()
            print(text)
            texts.append(text)
            if not options.no_record:
                record(text)
                log(f"\nappended to {Path('bench/RESULTS.md')}")
    finally:
        if options.keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
