"""The single-machine layout (`make run` starts the Procfile): every queue has a worker, and essay gradings
have one that never decodes."""

import re

from core.celery import app as celery_app
from education.services.grading import GRADE_TASK
from tests.workers import ROOT


def _worker_queues() -> dict[str, set[str]]:
    workers = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if " worker " in command:
            workers[name.strip()] = set(re.search(r"--queues (\S+)", command).group(1).split(","))
    return workers


def test_every_queue_has_a_worker_and_gradings_one_that_never_decodes():
    workers = _worker_queues()
    assert set().union(*workers.values()) == {q.name for q in celery_app.conf.task_queues}
    grading_queue = celery_app.amqp.router.route({}, GRADE_TASK)["queue"].name
    # Generation (explanations, stories) is routed to `ml`; a worker without `ml` is one that never decodes.
    assert celery_app.amqp.router.route({}, "education.tutor_explain")["queue"].name == "ml"
    assert any(grading_queue in queues and "ml" not in queues for queues in workers.values())
