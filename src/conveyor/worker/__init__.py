"""The runtime: workers that claim jobs and run them."""

from .loader import load_app
from .worker import Worker, WorkerStopped

__all__ = ["Worker", "WorkerStopped", "load_app"]
