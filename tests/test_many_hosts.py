"""Many worker hosts on one PostgreSQL: each worker runs in its own network namespace and
reaches the database over a virtual link (veth) that the test cuts and restores.

Each namespace gets a veth pair; on the host side of each link the test runs a small TCP
relay to PostgreSQL on 127.0.0.1:5432, so the workers' database traffic crosses the virtual
network. Cutting a link (ip link set ... down) leaves the worker alive but unreachable: its
leases expire, the other hosts take its jobs over, and when the link comes back its late
outcomes are refused by the lease token.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from databases import in_ci
from helpers import Execution, read_executions, wait_until, worker_env

from conveyor import Conveyor, JobState

pytestmark = pytest.mark.backends("postgresql")

HOSTS = 3
JOBS = 3000
LEASE = 2.0


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"the many-host test must run in CI: {reason}")
    pytest.skip(reason)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


class Relay:
    """TCP relays from the host side of each link to PostgreSQL on loopback."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        servers = [
            self.loop.run_until_complete(asyncio.start_server(self._handle, address, 5432))
            for address in self.addresses
        ]
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            for server in servers:
                server.close()
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for server in servers:
                self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(OSError):
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def __enter__(self) -> Relay:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("relay did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@contextlib.contextmanager
def namespaces(tag: str) -> Iterator[list[tuple[str, str, str]]]:
    """HOSTS namespaces, each linked to the host: (namespace, host-side device, host ip)."""
    made: list[tuple[str, str, str]] = []
    try:
        for index in range(1, HOSTS + 1):
            namespace, host_dev, ns_dev = f"cv{tag}{index}", f"cvh{tag}{index}", f"cvn{tag}{index}"
            host_ip, ns_ip = f"10.231.{index}.1", f"10.231.{index}.2"
            _run("ip", "netns", "add", namespace)
            made.append((namespace, host_dev, host_ip))
            _run("ip", "link", "add", host_dev, "type", "veth", "peer", "name", ns_dev)
            _run("ip", "link", "set", ns_dev, "netns", namespace)
            _run("ip", "addr", "add", f"{host_ip}/24", "dev", host_dev)
            _run("ip", "link", "set", host_dev, "up")
            _run("ip", "netns", "exec", namespace, "ip", "addr", "add", f"{ns_ip}/24", "dev",
                 ns_dev)
            _run("ip", "netns", "exec", namespace, "ip", "link", "set", ns_dev, "up")
            _run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        yield made
    finally:
        for namespace, host_dev, _ in made:
            subprocess.run(["ip", "link", "del", host_dev], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def _url(db_url: str, host: str) -> str:
    """The test schema's URL, reached through `host` (port and query kept)."""
    parts = urlsplit(db_url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}:{parts.port or 5432}"))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_three_hosts_one_cut_off_past_its_lease(db_url: str, tmp_path: Path) -> None:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("ip") is None:
        _unavailable("network namespaces need Linux, root and iproute2's `ip`")
    probe = f"cvp{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        _unavailable("this machine does not allow creating network namespaces")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)

    from jobs_app import make_app

    app: Conveyor = make_app(db_url, lease_timeout=LEASE)
    log = tmp_path / "executions.log"
    tag = uuid.uuid4().hex[:4]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        record = app.tasks["t.record"]
        # A long job only the victim takes: it is surely running there when the link is cut.
        ticks, gates = tmp_path / "ticks", tmp_path / "gates"
        gates.mkdir()
        long_job = app.tasks["t.gate_pid"].options(queue="long").enqueue(
            str(gates), ticks_file=str(ticks))
        with namespaces(tag) as hosts, Relay([ip for _, _, ip in hosts]):
            errs = [tmp_path / f"host{index}.err" for index in range(HOSTS)]
            procs.extend([None] * HOSTS)  # type: ignore[list-item]

            def launch(index: int, *extra: str) -> None:
                namespace, _, host_ip = hosts[index]
                url = _url(db_url, host_ip)
                with open(errs[index], "wb") as stderr:
                    procs[index] = subprocess.Popen(
                        ["ip", "netns", "exec", namespace, sys.executable, "-m", "conveyor",
                         "worker", "-A", "jobs_app:app", "--url", url, "-c", "4",
                         "--shutdown-timeout", "10", "--name", f"host{index}",
                         "-q", "default,long", *extra],
                        env=worker_env(url, log, lease=LEASE), stdout=stderr, stderr=stderr)

            def long_run() -> list[Execution]:
                return [r for r in read_executions(log) if r.job_id == long_job.id]

            # The victim starts first, so it surely holds the long job when its link is cut;
            # it runs jobs in pool processes, which stop themselves when their worker cannot
            # renew their leases.
            launch(HOSTS - 1, "--pool", "process")
            (victim_long,) = wait_until(long_run, timeout=60, message="the victim's long job")
            for index in range(HOSTS - 1):
                launch(index)
            wait_until(lambda: len(app.inspector.workers()) == HOSTS, timeout=60,
                       message="every host's worker up")
            jobs = app.enqueue_many([record.prepare(f"job-{n}", sleep=0.004)
                                     for n in range(JOBS)])
            _, victim_dev, _ = hosts[-1]
            victim_pid = procs[-1].pid
            # The python process inside `ip netns exec` keeps the pid (exec); its jobs run in
            # its pool processes, which name it as their parent.
            assert _parent(victim_long.pid) == victim_pid
            connected = {proc.pid for proc in procs[:-1]}

            def host_of(pid: int) -> int:
                """The worker of a run: the connected hosts run jobs in their own process,
                the victim in its pool processes (respawned after a kill)."""
                return pid if pid in connected else victim_pid

            def victim_runs() -> list[Execution]:
                return [r for r in read_executions(log) if r.pid not in connected]

            wait_until(lambda: len(victim_runs()) >= 20, timeout=60, message="victim to work")
            _run("ip", "link", "set", victim_dev, "down")
            cut_at = time.time()
            # Cut off, the victim cannot renew: its pool process stops itself before the
            # others may take the long job over (they wait a whole lease for that).
            taken = wait_until(lambda: [r for r in long_run() if r.pid != victim_long.pid],
                               timeout=60, message="the long job taken over")[0]
            last_tick = max(float(line.split()[1]) for line in ticks.read_text().splitlines()
                            if int(line.split()[0]) == victim_long.pid)
            assert last_tick < taken.start, "the cut-off host's run went on beside the new one"
            assert taken.start > cut_at
            wait_until(lambda: app.inspector.count_by_state().get("default", {})
                       .get(JobState.SUCCEEDED, 0) >= JOBS - 200, timeout=120, interval=0.1,
                       message="the two connected hosts to drain the queue")
            # The link comes back only once a whole lease has passed: the victim's in-flight
            # jobs are then the others' to take over. (The connected hosts may drain the
            # queue sooner than that.)
            wait_until(lambda: time.time() - cut_at > LEASE, timeout=LEASE + 10,
                       interval=0.05, message="a lease to pass since the cut")
            _run("ip", "link", "set", victim_dev, "up")
            wait_until(lambda: app.inspector.count_by_state().get("default", {})
                       .get(JobState.SUCCEEDED, 0) == JOBS, timeout=120, interval=0.1,
                       message="every job to succeed")
            # The victim's outcome for the long job (stopped: lease not renewed) is refused.
            wait_until(lambda: b"rejected" in errs[-1].read_bytes(), timeout=60,
                       message="the victim's late outcomes to be refused")
            (gates / str(taken.pid)).touch()
            assert long_job.result(timeout=30) == taken.pid
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc, err in zip(procs, errs, strict=True):
                assert proc.wait(timeout=60) == 0, err.read_text()

        runs = [run for run in read_executions(log) if run.job_id != long_job.id]
        by_job: dict[int, list[tuple[float, float, int]]] = {}
        for run in runs:
            assert run.end is not None, f"execution never ended: {run}"
            by_job.setdefault(run.job_id, []).append((run.start, run.end, run.pid))
        assert set(by_job) == {job.id for job in jobs}  # every job ran at least once
        for job_id, spans in by_job.items():
            spans.sort()
            for (_, first_end, _), (second_start, _, _) in itertools.pairwise(spans):
                assert second_start >= first_end, f"job {job_id} ran twice at once: {spans}"
        # The outcome that stands is that of the run holding the job's latest lease (the
        # record's `worker`): a run whose lease was taken away had its late outcome refused.
        # (That run is not always the earlier one: a claim that reached the cut-off host only
        # once its link was back may still be started there, after the job succeeded elsewhere.)
        pid_of = {f"host{index}": proc.pid for index, proc in enumerate(procs)}
        records = {record.id: record for record in app.inspector.list_jobs(limit=JOBS + 1)}
        for job_id, spans in by_job.items():
            stored = records[job_id]
            assert host_of(stored.result) == pid_of[stored.worker or ""], (
                f"job {job_id}: runs (start, end, pid) {spans}, workers {pid_of}, "
                f"record {stored}, attempts {app.inspector.attempts(job_id)}")
        taken_over = [job_id for job_id, spans in by_job.items()
                      if any(host_of(earlier[2]) == victim_pid != host_of(later[2])
                             for earlier, later in itertools.pairwise(spans))]
        for job_id in [*taken_over, long_job.id]:
            assert app.get_job(job_id).state is JobState.SUCCEEDED
            assert any(a.outcome == "lost" for a in app.inspector.attempts(job_id))
        hosts_seen = {host_of(pid) for spans in by_job.values() for *_, pid in spans}
        assert victim_pid in hosts_seen and len(hosts_seen) >= 2, hosts_seen
    finally:
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        app.close()
