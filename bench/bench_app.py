"""Tasks for the benchmarks, importable by worker processes as `bench_app:app`."""

from conveyor import Conveyor

app = Conveyor()  # URL from $CONVEYOR_URL


@app.task(name="bench.noop")
def noop() -> None:
    return None
