"""A PostgreSQL server of the test's own: a fresh cluster in a temporary folder, on a free
loopback port, that the test may stop and restart for real without touching the server the
rest of the suite shares (whose other tests may be running at the same time).

Needs root (the cluster runs as the `postgres` user) and the server's binaries, found the way
Debian installs them (/usr/lib/postgresql/<version>/bin).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OWNER = "postgres"
PACKAGE_ROOT = Path("/usr/lib/postgresql")


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
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
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

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate")

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """initdb, start, yield, then stop and delete it (whatever the test left it as)."""
    bin_dir = binaries()
    assert bin_dir is not None, unavailable()
    folder = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    shutil.chown(folder, OWNER, OWNER)
    cluster = PrivateCluster(folder, _free_port(), bin_dir)
    try:
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(bin_dir / "initdb"), "-D", str(folder / "data"),
             "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True, capture_output=True, timeout=120)
        cluster.start()
        yield cluster
    finally:
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(bin_dir / "pg_ctl"), "-D", str(folder / "data"),
             "stop", "-m", "immediate"], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
