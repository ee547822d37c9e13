"""Worker heartbeat: each worker's main process writes a WorkerHeartbeat row every few seconds.

The row is removed on a clean shutdown; a killed worker's row simply goes stale.
"""

import logging
import os
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

log = logging.getLogger(__name__)

_stop = threading.Event()
_state: dict = {}


def _beat(hostname: str, queues: str, started_at) -> None:
    from core.models import WorkerHeartbeat

    while True:
        try:
            close_old_connections()
            WorkerHeartbeat.objects.update_or_create(
                hostname=hostname,
                defaults={
                    "queues": queues,
                    "pid": os.getpid(),
                    "started_at": started_at,
                    "last_seen": timezone.now(),
                },
            )
        except Exception:  # the database may be briefly away; the next beat retries
            log.warning("worker heartbeat could not be written", exc_info=True)
        finally:
            connection.close()
        if _stop.wait(settings.PARLANCE_WORKER_HEARTBEAT_SECONDS):
            return


@worker_ready.connect
def start_heartbeat(sender, **kwargs):
    hostname = sender.hostname
    queues = ",".join(sorted(q.name for q in sender.app.amqp.queues.consume_from.values()))
    _stop.clear()
    thread = threading.Thread(
        target=_beat, args=(hostname, queues, timezone.now()), name="parlance-heartbeat", daemon=True
    )
    _state.update(hostname=hostname, thread=thread)
    thread.start()


@worker_shutdown.connect
def stop_heartbeat(sender, **kwargs):
    from core.models import WorkerHeartbeat

    thread = _state.get("thread")
    if thread is None:
        return
    _stop.set()
    thread.join(timeout=5)
    try:
        WorkerHeartbeat.objects.filter(hostname=_state["hostname"]).delete()
    finally:
        connection.close()
