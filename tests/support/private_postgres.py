"""A PostgreSQL server of the test's own: a fresh cluster in a temporary folder, on a free
loopback port, that the test may stop and restart for real without touching the server the
rest of the suite shares (whose other tests may be running at the same time).

Needs root (the cluster runs as the `postgres` user) and the server's binaries, found the way
Debian installs them (/usr/lib/postgresql/<version>/bin). Its folder is made in /tmp, which the
postgres user can enter whatever $TMPDIR is, and carries the test process's pid: a cluster
whose process died without its teardown is stopped and deleted by the next one made.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import pid_alive

OWNER = "postgres"
PACKAGE_ROOT = Path("/usr/lib/postgresql")
PARENT = Path("/tmp")
PREFIX = "conveyor-pg-"
START_ATTEMPTS = 3  # a free port found may be taken by another process before the server's


def binaries() -> Path | None:
    """The newest installed server's bin folder, or None."""
    if not PACKAGE_ROOT.is_dir():
        return None
    versions = sorted((p for p in PACKAGE_ROOT.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: [int(part) for part in p.name.split(".") if part.isdigit()])
    return versions[-1] / "bin" if versions else None


def unavailable() -> str | None:
    """Why a private cluster cannot be made here, or None."""
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster runs as the postgres user: the test needs root"
    if shutil.which("runuser") is None:
        return "runuser is missing"
    if binaries() is None:
        return f"no PostgreSQL server binaries under {PACKAGE_ROOT}"
    return None


class PrivateCluster:
    """A running cluster; `url` reaches its `postgres` database as user postgres."""

    def __init__(self, folder: Path, port: int, bin_dir: Path) -> None:
        self.folder = folder
        self.port = port
        self.bin_dir = bin_dir
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-k {shlex.quote(str(self.folder))}")
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(self.bin_dir / "pg_ctl"), "-D",
             str(self.folder / "data"), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
             "-o", options, *args],
            check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """As an administrator restarts it: a fast shutdown (sessions are ended), then up."""
        self._pg_ctl("restart", "-m", "fast")

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(bin_dir: Path, folder: Path) -> None:
    subprocess.run(["runuser", "-u", OWNER, "--", str(bin_dir / "pg_ctl"), "-D",
                    str(folder / "data"), "stop", "-m", "immediate"],
                   capture_output=True, timeout=60)
    shutil.rmtree(folder, ignore_errors=True)


def _sweep_abandoned(bin_dir: Path) -> None:
    """Clusters of test processes that died before their teardown (their pid is gone)."""
    for folder in PARENT.glob(PREFIX + "*"):
        pid = folder.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            _stop(bin_dir, folder)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """initdb, start, yield, then stop and delete it (whatever the test left it as)."""
    bin_dir = binaries()
    assert bin_dir is not None, unavailable()
    _sweep_abandoned(bin_dir)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=PARENT))
    try:
        shutil.chown(folder, OWNER, OWNER)
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(bin_dir / "initdb"), "-D", str(folder / "data"),
             "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True, capture_output=True, timeout=120)
        for attempt in range(START_ATTEMPTS):
            cluster = PrivateCluster(folder, _free_port(), bin_dir)
            try:
                cluster.start()
                break
            except subprocess.CalledProcessError as exc:
                if attempt == START_ATTEMPTS - 1:
                    raise AssertionError(
                        f"the private cluster did not start:\n{cluster.log()}") from exc
        yield cluster
    finally:
        _stop(bin_dir, folder)
