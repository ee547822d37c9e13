"""Uploaded course material is embedded by a real ml worker process."""

import numpy as np
import pytest

from education.models import CourseMaterial
from education.services.material import material_upload
from tests.education.conftest import TUTOR_CORPUS
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _ml_worker(mlcore_home, encoder_spec, log_dir):
    """A real worker on the `ml` queue with the tiny models, its queues purged first."""
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home), "MLCORE_ENCODER": encoder_spec}
    return celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="ml", extra_env=env, log_dir=log_dir)


def test_uploaded_material_is_embedded_by_the_ml_worker(course, teacher, tiny_encoder_spec, mlcore_home, tmp_path):
    with _ml_worker(mlcore_home, tiny_encoder_spec, tmp_path):
        material = material_upload(course=course, user=teacher, title="", filename="thesis.md",
                                   data=TUTOR_CORPUS["Thesis statements"].encode())
        wait_for(lambda: CourseMaterial.objects.filter(pk=material.pk, state__in=["ready", "failed"]).exists(),
                 timeout=120, what="the material to be embedded")
    material.refresh_from_db()
    assert (material.state, material.attempts, material.error) == ("ready", 1, "")
    vectors = [np.frombuffer(bytes(c.embedding), dtype=np.float32) for c in material.chunks.all()]
    assert len(vectors) == 2 and all(v.shape == (32,) for v in vectors)


def test_a_later_explanation_is_written_by_the_ml_worker(course, teacher, tutor_session, tutor_lm, tiny_encoder_spec,
                                                         mlcore_home, tmp_path):
    from core.models import TaskRun
    from education.models import TutorMessage
    from education.services import tutor
    from tests.education.test_tutor_answers import TINY_LM_WORDS

    with _ml_worker(mlcore_home, tiny_encoder_spec, tmp_path):
        material = material_upload(course=course, user=teacher, title="Markup", filename="markup.txt",
                                   data=("An HTML tag must be escaped when shown on a page. " + TINY_LM_WORDS).encode())
        wait_for(lambda: CourseMaterial.objects.filter(pk=material.pk, state="ready").exists(), timeout=120,
                 what="the material to be embedded")
        message = tutor.tutor_ask(session=tutor_session, question="Which HTML tag must be escaped?",
                                  explain=tutor.Explain.LATER)
        assert message.explanation_pending and message.explanation == ""  # the answer did not wait for it
        wait_for(lambda: not TutorMessage.objects.get(pk=message.pk).explanation_pending, timeout=120,
                 what="the worker to write the explanation")
    message.refresh_from_db()
    assert message.explanation != ""  # the tiny LM's words are all in the material: its text passes the filter
    run = TaskRun.objects.get(task="education.tutor_explain")
    assert (run.args, run.state, run.attempts, run.worker.startswith("test-")) == ([message.pk], "done", 1, True)


def test_the_sentence_vectors_upgrade_is_run_by_the_ml_worker(course, teacher, tiny_encoder_spec, mlcore_home,
                                                               tmp_path):
    from io import StringIO

    from django.core.management import call_command

    from core.models import TaskRun
    from education.models import MaterialChunk
    from education.services.material import SENTENCE_VECTORS_TASK, material_create, material_embed

    material = material_create(course=course, user=teacher, title="Thesis", kind="markdown",
                               text=TUTOR_CORPUS["Thesis statements"], enqueue=False)
    assert material_embed(material_id=material.pk) == "ready"
    expected = dict(material.chunks.values_list("pk", "sentence_embeddings"))
    material.chunks.update(sentence_embeddings=None)  # embedded before migration 0010
    missing = MaterialChunk.objects.filter(material=material, sentence_embeddings__isnull=True)
    with _ml_worker(mlcore_home, tiny_encoder_spec, tmp_path):
        call_command("education_sentence_vectors", stdout=StringIO())
        wait_for(lambda: not missing.exists(), timeout=120, what="the worker to store the sentence vectors")
        wait_for(lambda: TaskRun.objects.filter(task=SENTENCE_VECTORS_TASK, state="done").exists(), timeout=30,
                 what="the run to be done")
    run = TaskRun.objects.get(task=SENTENCE_VECTORS_TASK)
    assert (run.args, run.attempts, run.worker.startswith("test-")) == ([material.pk], 1, True)
    stored = dict(material.chunks.values_list("pk", "sentence_embeddings"))
    assert stored.keys() == expected.keys() and len(stored) == 2
    for pk, vectors in stored.items():
        np.testing.assert_allclose(np.frombuffer(bytes(vectors), dtype=np.float32),
                                   np.frombuffer(bytes(expected[pk]), dtype=np.float32), atol=1e-6)
