"""The layers of DESIGN.md, enforced: imports point down only.

Every module under src/conveyor is placed in a layer below (a new module must be placed before
this test passes), and every import in it (top-level, inside a function, under TYPE_CHECKING
alike) must name a module of its own layer or of one below.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import Conveyor
from conveyor.app import Runner, WorkerFactory

SRC = Path(conveyor.__file__).resolve().parent
LAYERS = ("pure", "storage", "app", "runtime", "interfaces", "package")

# Most specific name first wins: "conveyor.backends" covers conveyor.backends.sqlite too.
PLACES: dict[str, str] = {
    # pure data: no I/O, no app. Some are named in DESIGN.md but do not exist yet.
    "conveyor._version": "pure",
    "conveyor.context": "pure",  # the current job's ContextVar: set by a pool, read by tasks
    "conveyor.control": "pure",  # Retry and Snooze, raised by tasks
    "conveyor.errors": "pure",
    "conveyor.fairshare": "pure",
    "conveyor.job": "pure",
    "conveyor.lease_watch": "pure",
    "conveyor.limits": "pure",
    "conveyor.links": "pure",  # a job's depends_on, callbacks and reuse, as given
    "conveyor.canvas": "pure",
    "conveyor.outcomes": "pure",
    "conveyor.records": "pure",
    "conveyor.retention": "pure",
    "conveyor.policy": "pure",
    "conveyor.retry": "pure",
    "conveyor.schedule": "pure",
    "conveyor.serializer": "pure",
    "conveyor.validation": "pure",
    "conveyor.waits": "pure",
    # storage
    "conveyor.backends": "storage",
    "conveyor.sql": "storage",
    # app
    "conveyor.app": "app",
    "conveyor.options": "app",
    "conveyor.periodic": "app",
    "conveyor.runners": "app",  # the seam: what the app's worker() returns, and its factory
    "conveyor.task": "app",
    "conveyor.views": "app",
    "conveyor.workflow": "app",
    "conveyor.workflow_views": "app",
    # runtime
    "conveyor.worker": "runtime",
    # interfaces
    "conveyor.__main__": "interfaces",
    "conveyor.cli": "interfaces",
    "conveyor.contrib": "interfaces",
    "conveyor.dashboard": "interfaces",
    "conveyor.testing": "interfaces",
    # The package's __init__ sees every layer: it wires the runtime into the app.
    "conveyor": "package",
}

# (importer, imported) pairs that point up today, each with who removes it. Remove the entry
# with the import: an exception that no longer happens fails the test, so the list stays true.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
}

# What the app layer may see of storage: the backend protocols and the opener, never one
# dialect's module or its SQL files (settings for one backend pass through open_backend).
APP_SEES_OF_STORAGE = ("conveyor.backends", "conveyor.backends.base")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative / "__init__.py"
                                                             ).is_file()


def imports_of(path: Path) -> list[Import]:
    """Every conveyor module `path` imports, wherever the import statement is."""
    importer = module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                target = submodule if is_module(submodule) else source
                found.append(Import(importer, target, node.lineno))
    return [item for item in found
            if item.imported == "conveyor" or item.imported.startswith("conveyor.")]


def layer_of(module: str) -> str:
    for prefix in sorted(PLACES, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return PLACES[prefix]
    raise AssertionError(f"{module} has no layer: place it in PLACES in {__file__}")


def all_imports() -> list[Import]:
    return [item for path in sorted(SRC.rglob("*.py")) for item in imports_of(path)]


def test_every_module_has_a_layer() -> None:
    for path in sorted(SRC.rglob("*.py")):
        assert layer_of(module_name(path)) in LAYERS


def test_imports_point_down_only() -> None:
    upward = {(item.importer, item.imported): item for item in all_imports()
              if LAYERS.index(layer_of(item.imported)) > LAYERS.index(layer_of(item.importer))}
    unexpected = [f"{item.importer} (line {item.line}, {layer_of(item.importer)}) imports "
                  f"{item.imported} ({layer_of(item.imported)})"
                  for key, item in sorted(upward.items()) if key not in KNOWN_EXCEPTIONS]
    assert not unexpected, "imports that point up the layers:\n" + "\n".join(unexpected)
    fixed = sorted(set(KNOWN_EXCEPTIONS) - set(upward))
    assert not fixed, f"no longer happen, remove them from KNOWN_EXCEPTIONS: {fixed}"


def test_the_app_layer_sees_storage_only_through_its_protocols() -> None:
    reaching = [f"{item.importer} (line {item.line}) imports {item.imported}"
                for item in all_imports()
                if layer_of(item.importer) == "app" and layer_of(item.imported) == "storage"
                and item.imported not in APP_SEES_OF_STORAGE]
    assert not reaching, "\n".join(reaching)


def test_the_resolver_reads_relative_and_lazy_imports() -> None:
    """The checks above are only as good as the import reader: a known case of each form."""
    read = {(item.imported, item.line > 0) for item in imports_of(SRC / "__init__.py")}
    assert ("conveyor.worker", True) in read  # lazy, inside a function
    assert ("conveyor.app", True) in read  # relative, top-level
    assert {item.imported for item in imports_of(SRC / "worker" / "worker.py")} >= {
        "conveyor.validation", "conveyor.backends.base"}


def test_import_conveyor_leaves_the_runtime_unloaded() -> None:
    code = ("import sys, conveyor; loaded = sorted(m for m in sys.modules "
            "if m.startswith('conveyor.worker')); print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.backends("sqlite")
def test_app_worker_is_the_runtime_s_worker(db_url: str) -> None:
    from conveyor.worker import Worker

    assert conveyor.Worker is Worker
    with Conveyor(db_url) as app:
        worker = app.worker(burst=True, concurrency=1)
        assert isinstance(worker, Worker)
        worker.run()
        assert worker.processed == 0


def test_views_read_only_pure_data_and_the_inspector_s_records() -> None:
    """conveyor.views is shared by the CLI, the dashboard and the metrics: JSON-ready records
    from pure data and what the read-only Inspector returns, nothing that acts or renders."""
    seen = {item.imported for item in imports_of(SRC / "views.py")}
    assert {name for name in seen if layer_of(name) != "pure"} <= {"conveyor.backends.base"}


@pytest.mark.backends("sqlite")
def test_the_worker_factory_is_a_seam(db_url: str) -> None:
    """The app builds its workers through the factory the package registered; an
    integration may register its own (and the package's is restored here)."""
    from conveyor import app as app_module
    from conveyor import runners

    registered = runners.worker_factory
    assert registered is not None
    real: WorkerFactory = registered
    built: list[dict[str, object]] = []

    def factory(app: Conveyor, /, **options: Any) -> Runner:
        built.append({"app": app, **options})
        return real(app, **options)

    app_module.register_worker_factory(factory)
    try:
        with Conveyor(db_url) as app:
            app.worker(burst=True, concurrency=1, name="seam").run()
    finally:
        app_module.register_worker_factory(real)
    assert [(entry["app"], entry["name"], entry["pool"]) for entry in built] == [
        (app, "seam", "thread")]
