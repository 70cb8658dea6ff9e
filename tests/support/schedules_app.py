"""The test app with schedules, importable by worker and scheduler processes as
`schedules_app:app`: jobs_app's tasks plus a schedule "tick" running t.record every
$CONVEYOR_TEST_EVERY seconds (default 1) with catch-up $CONVEYOR_TEST_CATCH_UP (default "all")."""

from __future__ import annotations

import os

from jobs_app import make_app

app = make_app()
app.schedule("tick", "t.record", every=float(os.environ.get("CONVEYOR_TEST_EVERY", "1")),
             catch_up=os.environ.get("CONVEYOR_TEST_CATCH_UP", "all"),  # type: ignore[arg-type]
             kwargs={"tag": "tick"})
