"""Start real Celery worker processes for tests, against the test database."""

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("PARLANCE_REQUIRE_SERVICES") == "1"


def worker_database_url() -> str:
    """DATABASE_URL of the database the tests run on (the test database pytest-django made)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = quote(s["USER"] or "")
        if s.get("PASSWORD"):
            auth += ":" + quote(s["PASSWORD"])
        host = s["HOST"] or "localhost"
        return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{s['NAME']}"
    raise RuntimeError(f"no worker URL for database vendor {connection.vendor}")


def require_redis(url: str) -> None:
    """Skip when Redis is not reachable here; in CI (PARLANCE_REQUIRE_SERVICES=1) fail instead."""
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname or "localhost", parsed.port or 6379), timeout=2).close()
    except OSError as exc:
        message = f"Redis is not reachable at {url}: {exc}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def app_broker_env() -> dict:
    """Environment that points a worker at the broker this test process publishes to."""
    from django.conf import settings

    from core.celery import app

    return {"CELERY_BROKER_URL": app.conf.broker_url, "PARLANCE_BROKER_DIR": str(settings.CELERY_BROKER_DIR)}


def purge_app_queues() -> None:
    """Drop messages left on this test process's broker by earlier runs."""
    from core.celery import app

    with app.connection_for_write() as conn:
        for queue in app.conf.task_queues:
            queue.bind(conn.default_channel).purge()


@contextmanager
def celery_worker(*, broker_url: str, queues: str = "default,ml", pool: str = "solo", extra_env=None, log_dir: Path,
                  concurrency: int = 1):
    """Run `celery worker` as a subprocess until the block ends; yields (process, hostname).

    Ready when the worker's own heartbeat row appears in the test database.
    """
    from core.models import WorkerHeartbeat

    name = f"test-{uuid.uuid4().hex[:8]}"
    hostname = f"{name}@{socket.gethostname()}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "PARLANCE_WORKER_HEARTBEAT_SECONDS": "1",
        **(extra_env or {}),
    }
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "core", "worker", "--queues", queues, "--pool", pool,
         "--concurrency", str(concurrency), "--hostname", hostname, "--loglevel", "INFO", "--without-mingle",
         "--without-gossip"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{log_path.read_text()}")
            return WorkerHeartbeat.objects.filter(hostname=hostname).exists()

        wait_for(ready, timeout=90, what=f"worker {hostname} heartbeat")
        yield proc, hostname
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
