"""Tasks for the benchmarks, importable by worker processes as `bench_app:app`."""

from conveyor import Conveyor

app = Conveyor()  # URL from $CONVEYOR_URL


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.stamp")
def stamp(tag: int) -> None:
    """Leave `tag time` in $BENCH_DIR/stamps when the job's code starts (pickup latency)."""
    from marks import mark_stamp  # only the benchmark driver's workers need it

    mark_stamp(tag)
