"""Real workers, a row lock or a stalled HTTP response to hold a task mid-way, and kill -9."""

import os
import signal
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from core.models import TaskRun
from tests.education.conftest import (  # noqa: F401  (fixtures shared here)
    assignment,
    course,
    embedder,
    make_essay,
    student,
    teacher,
    tutor_lm,
    tutor_session,
)
from tests.finance.conftest import active_sentiment, companies, source  # noqa: F401  (fixtures shared here)
from tests.workers import (
    app_broker_env,
    celery_worker,
    purge_app_queues,
    require_redis,
    wait_for,
    worker_database_url,
)

QUEUES = "default,ml"


@pytest.fixture
def broker_env(mlcore_home):
    """Environment of a worker on this test's broker (queues purged), with the test's model home."""
    from core.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("the fault tests hold PostgreSQL row locks")
    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    return {**app_broker_env(), "MLCORE_HOME": str(mlcore_home)}


@pytest.fixture
def start_worker(broker_env, tmp_path):
    """`with start_worker() as (process, hostname):` a real worker on both queues."""

    def _start(broker_url: str | None = None):
        env = {**broker_env, **({"CELERY_BROKER_URL": broker_url} if broker_url else {})}
        return celery_worker(broker_url=env["CELERY_BROKER_URL"], queues=QUEUES, extra_env=env, log_dir=tmp_path)

    return _start


@contextmanager
def row_locked(sql: str, params: list):
    """Hold `SELECT ... FOR UPDATE` from another connection until the block ends (then roll back)."""
    with psycopg.connect(worker_database_url()) as conn:
        conn.execute(sql, params).fetchall()
        try:
            yield
        finally:
            conn.rollback()


def lock_waiters() -> int:
    """Backends of this database waiting for a lock (a worker blocked on the test's row lock)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE NOT l.granted AND a.datname = current_database()")
        return cursor.fetchone()[0]


def running_on(task: str, hostname: str) -> TaskRun | None:
    return TaskRun.objects.filter(task=task, state=TaskRun.State.RUNNING, worker=hostname).first()


def kill_9(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def finished(run: TaskRun, timeout: float = 120) -> TaskRun:
    def done():
        row = TaskRun.objects.get(pk=run.pk)
        return row if row.state in (TaskRun.State.DONE, TaskRun.State.FAILED) else None

    return wait_for(done, timeout=timeout, interval=0.2, what=f"task run {run.pk} to finish")
