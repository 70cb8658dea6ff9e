"""Starting a command in the background, portably: no fork, no double-fork, no daemon library.

The command runs in a new session (POSIX) or as a detached process (Windows), so closing the
terminal does not stop it; its stdout and stderr go to a logfile."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigurationError


def spawn_detached(argv: Sequence[str], logfile: Path) -> subprocess.Popen[bytes]:
    if not logfile.parent.is_dir():
        raise ConfigurationError(f"cannot write logfile {str(logfile)!r}: the folder "
                                 f"{str(logfile.parent)!r} does not exist")
    try:
        # A new logfile is readable by its owner only; an existing one keeps its mode.
        log = os.fdopen(os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    except OSError as exc:
        raise ConfigurationError(f"cannot open logfile {str(logfile)!r}: {exc.strerror}") from None
    with log:
        if sys.platform == "win32":
            flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
            return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=os.getcwd(),
                                    creationflags=flags, close_fds=True)
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=os.getcwd(),
                                start_new_session=True, close_fds=True)


def log_tail(logfile: Path, lines: int = 15) -> str:
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
