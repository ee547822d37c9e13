"""Uploaded course material is embedded by a real ml worker process."""

import numpy as np
import pytest

from education.models import CourseMaterial
from education.services.material import material_upload
from tests.education.conftest import TUTOR_CORPUS
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_uploaded_material_is_embedded_by_the_ml_worker(course, teacher, tiny_encoder_spec, mlcore_home, tmp_path):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home), "MLCORE_ENCODER": tiny_encoder_spec}
    with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="ml", extra_env=env, log_dir=tmp_path):
        material = material_upload(course=course, user=teacher, title="", filename="thesis.md",
                                   data=TUTOR_CORPUS["Thesis statements"].encode())
        wait_for(lambda: CourseMaterial.objects.filter(pk=material.pk, state__in=["ready", "failed"]).exists(),
                 timeout=120, what="the material to be embedded")
    material.refresh_from_db()
    assert (material.state, material.attempts, material.error) == ("ready", 1, "")
    vectors = [np.frombuffer(bytes(c.embedding), dtype=np.float32) for c in material.chunks.all()]
    assert len(vectors) == 2 and all(v.shape == (32,) for v in vectors)
