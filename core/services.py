"""State changes owned by core: demo accounts for a single-machine install, and the task ledger (TaskRun)."""

import json
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import ChannelError

from core.models import TaskRun, WorkerHeartbeat
from core.roles import Role

log = logging.getLogger(__name__)

DEMO_ACCOUNTS: list[tuple[str, list[Role], bool]] = [
    ("analyst", [Role.ANALYST], False),
    ("student", [Role.STUDENT], False),
    ("student2", [Role.STUDENT], False),
    ("teacher", [Role.TEACHER], False),
    ("writer", [Role.WRITER], False),
    ("operator", [Role.OPERATOR], False),
    ("admin", list(Role), True),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    roles: list[str]


def _demo_passwords() -> dict[str, str]:
    """Random per-install demo passwords, kept under var/ so every start prints the same ones."""
    path = settings.VAR_DIR / "demo-credentials.json"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for username, _, _ in DEMO_ACCOUNTS:
        if username not in passwords:
            passwords[username] = secrets.token_urlsafe(9)
            changed = True
    if changed:
        path.write_text(json.dumps(passwords, indent=2))
        path.chmod(0o600)
    return passwords


def demo_accounts_ensure() -> list[DemoAccount]:
    """Create (or reset) one demo user per role and an admin. Refused on a production install."""
    if not settings.PARLANCE_DEMO_ALLOWED:
        raise ImproperlyConfigured("Demo accounts are never created on a production install.")
    passwords = _demo_passwords()
    with transaction.atomic():
        return _demo_users_write(passwords)


def _demo_users_write(passwords: dict[str, str]) -> list[DemoAccount]:
    User = get_user_model()
    accounts = []
    for username, roles, is_admin in DEMO_ACCOUNTS:
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(passwords[username])
        user.is_staff = is_admin
        user.is_superuser = is_admin
        user.email = f"{username}@demo.parlance.invalid"
        user.save()
        user.groups.set([Group.objects.get_or_create(name=role.value)[0] for role in roles])
        accounts.append(DemoAccount(username, passwords[username], [r.value for r in roles]))
    return accounts


# --- the task ledger ---------------------------------------------------------------------------------
# Why a ledger: with the Redis transport the message of a worker killed mid-task is only handed out again
# after the visibility timeout (hours), and a restarted Redis keeps no messages at all. The database knows
# what was asked for and who is doing it, so recovery is driven from it (core.taskruns_recover, on the beat).


# What giving up means for an app's own rows (an essay left "running", a material left "processing"): core imports
# no app, so an app registers a hook per task name (from its tasks module, imported by its AppConfig.ready). It is
# called with the failed run (args, attempts, error), in the transaction that fails it, when the ledger gives up on
# a run whose workers were lost max_attempts times. A task's own exception is not a give-up: its service records it.
_GIVE_UP_HOOKS: dict[str, Callable[[TaskRun], None]] = {}


def task_run_on_give_up(task: str, hook: Callable[[TaskRun], None]) -> None:
    """Register `hook(run)` to mark the app's rows failed when the ledger gives up on a run of `task`."""
    _GIVE_UP_HOOKS[task] = hook


def _task_run_gave_up(run: TaskRun) -> None:
    hook = _GIVE_UP_HOOKS.get(run.task)
    if hook is None:
        return
    try:
        with transaction.atomic():  # a failing hook must not undo the run's own failure, nor stop the sweep
            hook(run)
    except Exception:
        log.exception("give-up hook of task run %s (%s) failed", run.pk, run.task)


def task_run_enqueue(*, task: str, args: list, max_attempts: int | None = None) -> TaskRun:
    """Record a Celery task in the ledger, in the caller's transaction; its message is sent after commit.

    If the send fails (broker away), the row stays queued and the recovery sweep sends it later.
    """
    run = TaskRun.objects.create(task=task, args=args, celery_task_id=str(uuid.uuid4()), queued_at=timezone.now(),
                                 max_attempts=max_attempts or settings.PARLANCE_TASK_MAX_ATTEMPTS)
    transaction.on_commit(lambda: _task_run_send(run), robust=True)
    return run


def _task_run_send(run: TaskRun) -> None:
    current_app.send_task(run.task, args=run.args, kwargs={"run_id": run.pk}, task_id=run.celery_task_id)


def task_run_adopt(*, task: str, args: list, celery_task_id: str) -> TaskRun:
    """The ledger row of a message sent without one (a beat entry, older code), made on first delivery."""
    run, _ = TaskRun.objects.get_or_create(
        celery_task_id=celery_task_id,
        defaults={"task": task, "args": args, "queued_at": timezone.now(),
                  "max_attempts": settings.PARLANCE_TASK_MAX_ATTEMPTS},
    )
    return run


def task_run_claim(*, run_id: int, celery_task_id: str, worker: str) -> bool:
    """Take a run for this delivery, counting the attempt; False when it is not this delivery's to run.

    Claimable: a queued run (any message of it: the first one to arrive wins), or a running one whose own
    message the broker delivered again (its worker process was lost). Never past max_attempts: a redelivery
    of a run that has used them all fails it with the reason.
    """
    now = timezone.now()
    claimable = TaskRun.objects.filter(pk=run_id, attempts__lt=F("max_attempts")).filter(
        Q(state=TaskRun.State.QUEUED) | Q(state=TaskRun.State.RUNNING, celery_task_id=celery_task_id))
    if claimable.update(state=TaskRun.State.RUNNING, attempts=F("attempts") + 1, worker=worker[:255],
                        celery_task_id=celery_task_id, started_at=now, finished_at=None):
        return True
    exhausted = TaskRun.objects.filter(pk=run_id, state=TaskRun.State.RUNNING, celery_task_id=celery_task_id,
                                       attempts__gte=F("max_attempts"))
    run = exhausted.first()
    if run is None:
        return False
    run.state, run.finished_at = TaskRun.State.FAILED, now
    run.error = f"The worker running it was lost {run.attempts} times; giving up after {run.max_attempts} attempts."
    with transaction.atomic():
        if exhausted.update(state=run.state, finished_at=now, error=run.error):
            log.warning("task run %s (%s) failed: attempts exhausted", run_id, run.task)
            _task_run_gave_up(run)
    return False


def task_run_finish(*, run_id: int, celery_task_id: str) -> None:
    TaskRun.objects.filter(pk=run_id, state=TaskRun.State.RUNNING, celery_task_id=celery_task_id).update(
        state=TaskRun.State.DONE, finished_at=timezone.now(), error="")


def task_run_fail(*, run_id: int, celery_task_id: str, error: str, will_retry: bool = False) -> None:
    """Record a task's exception: failed, or back to queued when Celery retries it and attempts remain."""
    running = TaskRun.objects.filter(pk=run_id, state=TaskRun.State.RUNNING, celery_task_id=celery_task_id)
    if will_retry and running.filter(attempts__lt=F("max_attempts")).update(
            state=TaskRun.State.QUEUED, queued_at=timezone.now(), error=f"retrying after {error}"[:2000]):
        return
    running.update(state=TaskRun.State.FAILED, finished_at=timezone.now(), error=error[:2000])


def task_runs_recover(*, stale_after: timedelta | None = None, queued_after: timedelta | None = None) -> dict:
    """The beat's sweep: requeue runs whose worker is gone, fail those out of attempts, re-send lost messages.

    A running run's worker is gone when its WorkerHeartbeat is missing or older than `stale_after` (default:
    three heartbeats). A queued run is re-sent when it waited longer than `queued_after` and its queue in the
    broker is empty (its message was lost, e.g. Redis restarted); the claim makes an extra message harmless.
    Done runs older than PARLANCE_TASK_RUNS_KEEP_DAYS are deleted.
    """
    now = timezone.now()
    if stale_after is None:
        stale_after = timedelta(seconds=3 * settings.PARLANCE_WORKER_HEARTBEAT_SECONDS)
    if queued_after is None:
        queued_after = timedelta(seconds=settings.PARLANCE_TASK_RESEND_SECONDS)
    live = set(WorkerHeartbeat.objects.filter(last_seen__gte=now - stale_after).values_list("hostname", flat=True))
    outcome = {"requeued": [], "failed": [], "resent": []}
    for run in TaskRun.objects.filter(state=TaskRun.State.RUNNING).exclude(worker__in=live).order_by("pk"):
        current = TaskRun.objects.filter(pk=run.pk, state=TaskRun.State.RUNNING, celery_task_id=run.celery_task_id)
        if run.attempts >= run.max_attempts:
            run.state, run.finished_at = TaskRun.State.FAILED, now
            run.error = (f"The worker running it ({run.worker or 'unknown'}) was lost on each of {run.attempts} "
                         f"attempts; giving up after {run.max_attempts}.")
            with transaction.atomic():
                if current.update(state=run.state, finished_at=now, error=run.error):
                    _task_run_gave_up(run)
                    outcome["failed"].append(run.pk)
            continue
        if _task_run_resend(run, current, error=f"worker {run.worker or 'unknown'} was lost during attempt "
                                                f"{run.attempts}; requeued", state=TaskRun.State.QUEUED):
            outcome["requeued"].append(run.pk)
    waiting: dict[str, int] = {}
    for run in TaskRun.objects.filter(state=TaskRun.State.QUEUED, queued_at__lt=now - queued_after).order_by("pk"):
        queue = current_app.amqp.router.route({}, run.task)["queue"].name
        if queue not in waiting:
            waiting[queue] = _messages_waiting(queue)
        if waiting[queue]:
            continue  # its message may still be in line: wait until the queue drains
        current = TaskRun.objects.filter(pk=run.pk, state=TaskRun.State.QUEUED, celery_task_id=run.celery_task_id)
        if _task_run_resend(run, current, error=run.error, state=TaskRun.State.QUEUED):
            outcome["resent"].append(run.pk)
    keep = timedelta(days=settings.PARLANCE_TASK_RUNS_KEEP_DAYS)
    TaskRun.objects.filter(state=TaskRun.State.DONE, finished_at__lt=now - keep).delete()
    if any(outcome.values()):
        log.warning("task runs recovered: %s", outcome)
    return outcome


def _task_run_resend(run: TaskRun, current, *, error: str, state: str) -> bool:
    new_id = str(uuid.uuid4())
    with transaction.atomic():
        if not current.update(state=state, celery_task_id=new_id, queued_at=timezone.now(), error=error):
            return False
        run.celery_task_id = new_id
        transaction.on_commit(lambda: _task_run_send(run), robust=True)
    return True


def task_messages_waiting(task: str) -> int:
    """Messages waiting in the broker queue that `task` is routed to (for sweeps of other ledgers, e.g. mlcore's)."""
    return _messages_waiting(current_app.amqp.router.route({}, task)["queue"].name)


def _messages_waiting(queue: str) -> int:
    with current_app.connection_for_write() as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:  # Redis drops an empty list's key: no such queue is an empty one
            return 0
