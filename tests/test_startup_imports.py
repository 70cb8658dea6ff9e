"""What a process imports on its way to running jobs: start-up time is mostly imports, so
`conveyor worker` imports its own command and the runtime, not every command's (rich, the
views...), and `conveyor --help` still lists every command. Checked in fresh interpreters,
from sys.modules, never by timing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until, worker_env

import conveyor.cli
from conveyor import Conveyor, ConveyorWarning
from conveyor.cli.group import COMMANDS, cli

CLI_SRC = Path(conveyor.cli.__file__).resolve().parent
SUPPORT = str(Path(__file__).resolve().parent / "support")


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True, env=env, timeout=120).stdout


def loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code`."""
    out = run_python(f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))")
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def test_every_command_module_is_in_the_command_table() -> None:
    registering = {path.stem for path in CLI_SRC.glob("*.py")
                   if re.search(r"^@cli\.(command|group)\(", path.read_text(), re.M)}
    assert registering == set(COMMANDS)


def test_help_lists_every_command_with_its_short_help() -> None:
    out = subprocess.run([sys.executable, "-m", "conveyor", "--help"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    listed = out.split("Commands:\n", 1)[1]
    for name in COMMANDS:
        short = cli.commands[name].get_short_help_str(limit=45)
        assert re.search(rf"^  {name} +{re.escape(short.split()[0])}", listed, re.M), (name,
                                                                                       out)
    assert len([line for line in listed.splitlines() if line.startswith("  ")
                and not line.startswith("   ")]) == len(COMMANDS)


def test_reading_one_command_imports_only_its_module() -> None:
    loaded = loaded_after("from conveyor.cli import cli; cli.commands['worker']")
    commands = {name.rpartition(".")[2] for name in loaded
                if name.startswith("conveyor.cli.")} & set(COMMANDS)
    assert commands == {"worker"}
    assert not [name for name in loaded if name == "rich" or name.startswith("rich.")]


@pytest.mark.backends("sqlite")
def test_a_foreground_worker_never_imports_rich(db_url: str) -> None:
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('rich loaded:', sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'rich')))\n"
            "from conveyor.cli import main\nmain()")
    out = run_python(code, "worker", "-A", "jobs_app:app", "--burst", "--pool", "process",
                     "-c", "1", env=worker_env(db_url))
    assert out.splitlines()[-1] == "rich loaded: []"


PROBE_APP = '''
import sys

from conveyor import Conveyor, ConveyorWarning

app = Conveyor()


@app.task(name="probe.modules")
def modules() -> dict[str, object]:
    import multiprocessing

    return {"spawned": "from multiprocessing.spawn import spawn_main" in " ".join(sys.orig_argv),
            "start_method": multiprocessing.get_start_method(),
            "modules": sorted(name for name in sys.modules
                              if name.startswith("conveyor") or name in ("asyncio", "click"))}
'''


# The worker as `python -m conveyor`, as the console script, whose file each spawned pool
# process runs again (through it, only the `conveyor.cli` package, not the commands or click),
# and run by an application's own code, whose process the worker never forks.
STARTS = {
    "module": ([sys.executable, "-m", "conveyor"], {"conveyor.cli"}, True),
    "console-script": ([str(Path(sys.executable).parent / "conveyor")], set(), True),
    "main() in a caller's process":
        ([sys.executable, "-c", "from conveyor.cli import main; main()"], set(), False),
}


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_process_pool_child_imports_none_of_the_worker_s_machinery(db_url: str,
                                                                      tmp_path: Path,
                                                                      start: str) -> None:
    """A spawned pool process imports the app and what runs a job, not the worker
    (dispatcher, duties, the other pools), the CLI's commands, click, a database backend, nor
    asyncio (its jobs are plain functions). The first process, launched before the worker
    imports anything but its command, is a fork of it on Linux when the worker runs as the
    command itself (pools/spawn.py): it holds what the worker had imported by then without
    importing it again."""
    command, also_unwanted, forked = STARTS[start]
    (tmp_path / "probe_app.py").write_text(PROBE_APP)
    env = worker_env(db_url)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    with Conveyor(db_url) as app, pytest.warns(ConveyorWarning, match="no worker has"):
        jobs = [app.enqueue("probe.modules") for _ in range(2)]  # before any worker
    with Conveyor(db_url) as app:
        # One slot, a new process after each job: the first job runs in the process launched
        # ahead, the second in the one spawned to replace it.
        subprocess.run([*command, "worker", "-A", "probe_app:app", "--burst", "--pool",
                        "process", "-c", "1", "--max-tasks-per-child", "1",
                        "--log-level", "warning"], env=env, check=True, timeout=120)
        first, second = (app.get_job(job.id).result(timeout=10) for job in jobs)
    assert second["spawned"]
    assert first["spawned"] is not (forked and sys.platform.startswith("linux"))
    # A job that starts processes starts them the same way in either.
    assert first["start_method"] == second["start_method"] == "spawn"
    loaded = set(second["modules"])
    assert {"conveyor.worker.pools.spawn", "conveyor.worker.executor"} <= loaded
    unwanted = {"conveyor.worker.worker", "conveyor.worker.dispatcher",
                "conveyor.worker.duties", "conveyor.worker.pools.thread",
                "conveyor.worker.pools.asyncio", "conveyor.worker.pools.process",
                "conveyor.cli.group", "click", "conveyor.backends.sqlite", "asyncio",
                *also_unwanted}
    assert not loaded & unwanted
    # What the forked one holds beyond that came from the worker before its launch: it holds
    # no more of the runtime than a spawned one does.
    assert not set(first["modules"]) & {"conveyor.worker.worker", "conveyor.worker.dispatcher",
                                        "conveyor.worker.duties", "conveyor.backends.sqlite",
                                        "asyncio"}


# What makes `conveyor worker` spawn its first pool process rather than fork it: a fork copies
# only the thread that forks (a lock another thread held stays held in the copy), and a SQLite
# connection must never cross one.
NOT_FORKED = {
    "a Python thread":
        "import threading; threading.Thread(target=threading.Event().wait, daemon=True).start()",
    "faulthandler's watchdog (a C thread)":
        "import faulthandler; faulthandler.dump_traceback_later(3600)",
    "conveyor's backends imported": "import conveyor.backends.sqlite",
    "a caller's process": None,
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
@pytest.mark.parametrize("before", [*NOT_FORKED, "nothing of the kind"])
def test_the_first_process_launched_ahead_is_forked_only_where_that_is_safe(before: str
                                                                          ) -> None:
    setup = NOT_FORKED.get(before) or ""
    fresh_process = before != "a caller's process"
    code = (f"{setup}\n"
            "from conveyor.worker.pools.spawn import Launcher\n"
            "ahead = Launcher('jobs_app:app', 1)\n"
            f"ahead.launch_ahead(1, fresh_process={fresh_process})\n"
            "(process, _) = ahead._ahead[0]\n"
            "print(process._popen.method)\n"
            "ahead.close()\n")
    method = run_python(code, env={**os.environ, "PYTHONPATH": SUPPORT}).splitlines()[-1]
    assert method == ("fork" if before == "nothing of the kind" else "spawn")


def _noop_outcome(*_args: object) -> None:
    raise AssertionError("no job is run here")


@pytest.mark.backends("sqlite")
def test_a_process_pool_takes_the_processes_launched_ahead_for_its_app(db_url: str) -> None:
    """`conveyor worker` launches pool processes before it imports the app (spawn.py); the
    pool uses them when they import its app for as many slots, and kills them if not."""
    from jobs_app import make_app

    from conveyor.worker.pools.process import ProcessPool
    from conveyor.worker.pools.spawn import Launcher

    with make_app(db_url) as app:
        def pool(launcher: Launcher, app_path: str = "jobs_app:app") -> ProcessPool:
            return ProcessPool(2, app.tasks, app_path, db_url, _noop_outcome, _noop_outcome,
                               30.0, launcher=launcher)

        ahead = Launcher("jobs_app", 2)  # the attribute defaults to app, as the loader reads
        ahead.launch_ahead(1)
        taking = pool(ahead)
        (process, _) = ahead._ahead[0]
        try:
            taking.start()  # returns once a process (either) has imported the app
            # (slot 0's may not be the first: wait for both before looking at it)
            wait_until(lambda: all(slot.ready for slot in taking._slots), timeout=60,
                       message="the pool's processes to import the app")
            assert taking._slots[0].process is process  # the one launched ahead
            assert taking.launcher is ahead and ahead.take(0) is None
        finally:
            taking.close(kill=True)

        other = Launcher("jobs_app:app", 1)  # another size: not this pool's
        other.launch_ahead(1)
        (stray, _) = other._ahead[0]
        refusing = pool(other)
        try:
            assert refusing.launcher is not other
            stray.join(10)
            assert not stray.is_alive()
        finally:
            refusing.close(kill=True)


@pytest.mark.backends("sqlite")
def test_a_forked_pool_process_sees_its_pipe_close(db_url: str) -> None:
    """A forked process starts with a copy of the worker's end of its pipe; it closes it, so
    that the worker closing its own end (or dying) ends the process's read."""
    code = ("from conveyor.worker.pools.spawn import Launcher\n"
            "process, conn = Launcher('jobs_app:app', 1).launch(0, fork=True)\n"
            "conn.recv_bytes()\n"  # it has imported the app
            "conn.close()\n"
            "process.join(20)\n"
            "print(process.exitcode)\n"
            "process.kill()\n")  # (one still reading ignores the SIGTERM of exit's clean-up)
    assert run_python(code, env=worker_env(db_url)).splitlines()[-1] == "0"


def test_a_light_import_still_gives_conveyor_s_submodules() -> None:
    # `import conveyor` no longer imports every module; `conveyor.errors.JobFailed` still works.
    out = run_python("import conveyor\n"
                     "for name in conveyor.__all__:\n"  # each one its module's (_MODULES)
                     "    getattr(conveyor, name)\n"
                     "print(conveyor.errors.JobFailed.__name__, conveyor.canvas.__name__)\n"
                     "try:\n"
                     "    conveyor.no_such_module\n"
                     "except AttributeError as exc:\n"
                     "    print('refused:', exc)\n")
    assert out.splitlines() == [
        "JobFailed conveyor.canvas",
        "refused: module 'conveyor' has no attribute 'no_such_module'"]


def test_the_public_classes_annotations_resolve() -> None:
    # What pydantic, FastAPI's dependencies and documentation tools read at run time.
    import typing

    from conveyor import Task, TaskCall
    from conveyor.backends import open_backend

    for cls in (Conveyor, Task, TaskCall):
        for member in vars(cls).values():
            if callable(member):
                typing.get_type_hints(member)  # raises NameError for a name it cannot see
    assert "durability" in typing.get_type_hints(open_backend)


def test_names_the_lazy_packages_held_before_still_import() -> None:
    # Not in __all__, but imported by code outside conveyor before the packages went lazy.
    out = run_python("from conveyor.backends import Durability\n"
                     "from conveyor.worker.pools import OutcomeCallback, StartCallback\n"
                     "print(Durability.__args__)\n")
    assert out.strip() == "('normal', 'full')"


@pytest.mark.parametrize(("options", "launched"), [
    (["--pool", "process", "-c", "1"], True),
    (["--pool", "thread", "-c", "1"], False),
    (["--pool", "asyncio", "-c", "1"], False),
])
def test_the_worker_command_launches_pool_processes_ahead_for_a_process_pool_only(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, options: list[str], launched: bool
) -> None:
    from click.testing import CliRunner

    import conveyor.cli.worker as worker_command

    asked: list[tuple[str, int | None, bool]] = []
    # (None: the worker then starts its pool's processes itself, as without a launcher.)
    monkeypatch.setattr(worker_command, "_launch_ahead",
                        lambda app_path, concurrency, fresh_process: asked.append(
                            (app_path, concurrency, fresh_process)))
    result = CliRunner().invoke(cli, ["worker", "-A", "jobs_app:app", "--url", sqlite_url,
                                      "--burst", "--log-level", "warning", *options])
    assert result.exit_code == 0, result.output
    # (In a caller's process, as here, never forked: see the fork tests above.)
    assert asked == ([("jobs_app:app", 1, False)] if launched else [])


def test_processes_launched_ahead_are_killed_when_an_option_is_refused(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from conveyor.worker.pools.spawn import Launcher, Started

    launched: list[Started] = []
    real_launch = Launcher.launch

    def launch(self: Launcher, slot: int, *, fork: bool = False) -> Started:
        launched.append(real_launch(self, slot, fork=fork))
        return launched[-1]

    monkeypatch.setattr(Launcher, "launch", launch)
    # A fixed prefetch is refused for a process pool, after its processes were launched.
    result = CliRunner().invoke(cli, ["worker", "-A", "jobs_app:app", "--url", sqlite_url,
                                      "--burst", "--pool", "process", "-c", "1",
                                      "--prefetch", "5"])
    assert result.exit_code == 2, result.output
    assert "prefetch" in result.output
    assert launched, "no process was launched ahead"
    assert [process.is_alive() for process, _ in launched] == [False] * len(launched)


@pytest.mark.backends("sqlite")
def test_closing_a_pool_whose_slots_still_start_kills_every_process(db_url: str) -> None:
    """close(kill=True) right after start(): one slot is ready, the other still launching.
    The slot and the close both kill; one of them closes the pipe (a second close of its
    descriptor raised, or could close a file opened since), and no process is left."""
    import multiprocessing

    from jobs_app import make_app

    from conveyor.worker.pools.process import ProcessPool
    from conveyor.worker.pools.spawn import Launcher

    with make_app(db_url) as app:
        for _ in range(8):  # (the race showed in about half the closes)
            pool = ProcessPool(2, app.tasks, "jobs_app:app", db_url, _noop_outcome,
                               _noop_outcome, 30.0, launcher=Launcher("jobs_app:app", 2))
            pool.start()
            pool.close(kill=True)  # raised OSError (Bad file descriptor) in the race
            wait_until(lambda: not [child for child in multiprocessing.active_children()
                                    if child.name.startswith("conveyor-pool")],
                       timeout=30, message="every pool process to be gone")
