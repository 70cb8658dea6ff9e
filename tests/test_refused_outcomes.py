"""An outcome the database itself refuses fails its own job, never its batch or the worker.

The refusal is real: a trigger in the database rejects the success of one job, as a constraint,
an extension or a hostile value the serializer did not foresee would."""

from __future__ import annotations

from pathlib import Path

from databases import connect, is_postgres
from helpers import read_executions, wait_until, worker_thread

from conveyor import Conveyor, JobState

SQLITE_TRIGGER = """
CREATE TRIGGER refuse_poison BEFORE UPDATE ON conveyor_jobs
WHEN NEW.state = 'succeeded' AND NEW.args LIKE '%poison%'
BEGIN SELECT RAISE(ABORT, 'this database refuses poison'); END
"""
POSTGRES_TRIGGER = [
    """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'this database refuses poison'; END $$""",
    """CREATE TRIGGER refuse_poison BEFORE UPDATE ON conveyor_jobs FOR EACH ROW
       WHEN (NEW.state = 'succeeded' AND NEW.args LIKE '%poison%')
       EXECUTE FUNCTION refuse_poison()""",
]


def _install_trigger(db_url: str) -> None:
    conn = connect(db_url)
    try:
        for statement in POSTGRES_TRIGGER if is_postgres(db_url) else [SQLITE_TRIGGER]:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def test_an_outcome_the_database_refuses_fails_only_its_job(
    app: Conveyor, db_url: str, exec_log: Path
) -> None:
    app.backend  # noqa: B018 - creates the schema the trigger attaches to
    _install_trigger(db_url)
    record = app.tasks["t.record"]
    jobs = app.enqueue_many([record.prepare(f"job-{n}") for n in range(40)])
    poison = record.enqueue("poison")
    jobs += app.enqueue_many([record.prepare(f"late-{n}") for n in range(40)])
    with worker_thread(app, concurrency=8) as worker:
        wait_until(lambda: worker.processed == 81, timeout=30, message="every job to run")
        wait_until(lambda: all(job.refresh().state.is_terminal for job in [*jobs, poison]),
                   timeout=30, message="every outcome to be written")
    assert all(job.state is JobState.SUCCEEDED for job in jobs)
    failed = poison.refresh()
    assert failed.state is JobState.FAILED
    assert failed.error is not None and failed.error.type == "OutcomeNotStorable"
    assert "refuses poison" in failed.error.message
    runs = read_executions(exec_log)
    assert sorted(run.job_id for run in runs) == sorted(job.id for job in [*jobs, poison])
