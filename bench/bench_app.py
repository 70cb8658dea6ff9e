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


@app.task(name="bench.async_sleep")
async def async_sleep(seconds: float) -> None:
    """Await `seconds`; append "start end" (time.time()) to $BENCH_SPANS, measured by the job's
    own code (asyncio_pool.py)."""
    import asyncio
    import os
    import time

    started = time.time()
    await asyncio.sleep(seconds)
    path = os.environ.get("BENCH_SPANS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{started:.6f} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)
