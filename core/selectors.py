"""Read-only queries of core: the health of the database, the broker and the workers."""

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.celery import app as celery_app
from core.models import WorkerHeartbeat


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
        result = {"ok": True, **detail}
    except Exception as exc:  # a health check reports failures, it does not raise them
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _broker() -> dict:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport.driver_type}


def live_workers() -> list[WorkerHeartbeat]:
    """Workers whose heartbeat is younger than three beat intervals."""
    horizon = timezone.now() - timedelta(seconds=3 * settings.PARLANCE_WORKER_HEARTBEAT_SECONDS)
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=horizon))


def _workers() -> dict:
    workers = live_workers()
    queues = sorted({q for w in workers for q in w.queue_list})
    missing = sorted({q.name for q in celery_app.conf.task_queues} - set(queues))
    if not workers:
        raise RuntimeError("no worker has reported a heartbeat recently")
    return {
        "count": len(workers),
        "queues": queues,
        "queues_without_worker": missing,
        "workers": [
            {"hostname": w.hostname, "queues": w.queue_list, "last_seen": w.last_seen.isoformat()}
            for w in workers
        ],
    }


def system_health() -> dict:
    """Reachability of the database, the broker and the workers, each with its latency.

    `status` is "ok" when all three are fine, "degraded" when only workers are missing (the
    web still serves pages; queued work waits) and "down" when the database or broker fails.
    """
    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    checks["workers"] = _timed(_workers) if checks["database"]["ok"] else {"ok": False, "error": "database unreachable"}
    if not (checks["database"]["ok"] and checks["broker"]["ok"]):
        status = "down"
    elif not checks["workers"]["ok"]:
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "checks": checks}
