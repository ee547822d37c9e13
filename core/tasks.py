import socket
from collections.abc import Callable

from celery import shared_task

from core import services


@shared_task(name="core.ping", acks_late=True, max_retries=0)
def ping(token: str) -> dict:
    """Answer with the token and the worker's host, so a caller can see a round trip."""
    return {"token": token, "host": socket.gethostname()}


@shared_task(name="core.taskruns_recover", acks_late=True, max_retries=0)
def taskruns_recover() -> dict:
    """Beat: requeue or fail ledger runs whose worker was lost; re-send queued runs the broker lost."""
    return services.task_runs_recover()


def run_recorded(task, *, run_id: int | None, work: Callable):
    """Run `work()` for this delivery of `task` under its ledger row (core.TaskRun), once.

    For the body of a bound task: claims the row (made now when the message came without one), marks it
    done or failed. Returns None without running when the run is not this delivery's to do.
    """
    request = task.request
    if run_id is None:
        run_id = services.task_run_adopt(task=task.name, args=list(request.args or []),
                                         celery_task_id=request.id).pk
    if not services.task_run_claim(run_id=run_id, celery_task_id=request.id, worker=request.hostname or ""):
        return None
    try:
        result = work()
    except Exception as exc:
        retried = isinstance(exc, tuple(getattr(task, "autoretry_for", ()))) and request.retries < task.max_retries
        services.task_run_fail(run_id=run_id, celery_task_id=request.id, error=f"{type(exc).__name__}: {exc}",
                               will_retry=retried)
        raise
    services.task_run_finish(run_id=run_id, celery_task_id=request.id)
    return result
