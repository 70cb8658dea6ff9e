"""Finding a user's app by its import path, `module:attr`."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..app import Conveyor


def load_app(path: str) -> Conveyor:
    """Import `module:attr` (attr defaults to `app`) and return the Conveyor it names."""
    from ..app import Conveyor

    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError("no app given: pass --app module:attr or set CONVEYOR_APP")
    module_name, _, attr = path.strip().partition(":")
    attr = attr or "app"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, find modules in the current folder
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import the app module {module_name!r}: no module named {exc.name!r} "
                "(run from the folder that holds it, or add it to PYTHONPATH)"
            ) from exc
        raise
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attr!r}; pass --app {module_name}:NAME "
                "where NAME is your Conveyor object"
            ) from None
    if not isinstance(target, Conveyor):
        raise ConfigurationError(
            f"{path!r} is a {type(target).__name__}, not a Conveyor app"
        )
    if target.import_path is None:
        target.import_path = f"{module_name}:{attr}"
    return target


def find_import_path(app: Conveyor) -> str | None:
    """Where a process pool child can import this app from, if it can."""
    if app.import_path:
        return app.import_path
    for name, module in list(sys.modules.items()):
        if name in ("__main__", "__mp_main__") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is app:
                return f"{name}:{attr}"
    return None
