"""The benchmark app with $BENCH_SCHEDULES schedules (default 100), importable by workers as
`schedules_app:app`: cron expressions at every minute of the hour, hourly and daily ones, and a
few `every` schedules, none due within a minute or so."""

import os

from bench_app import app, noop

for n in range(int(os.environ.get("BENCH_SCHEDULES", "100"))):
    if n % 4 == 0:
        app.schedule(f"hourly-{n}", noop, cron=f"{n % 60} * * * *")
    elif n % 4 == 1:
        app.schedule(f"daily-{n}", noop, cron=f"{n % 60} {n % 24} * * *", tz="Europe/Berlin")
    elif n % 4 == 2:
        app.schedule(f"weekly-{n}", noop, cron=f"{n % 60} 3 * * {n % 7}")
    else:
        app.schedule(f"every-{n}", noop, every=3600 + n)

__all__ = ["app"]
