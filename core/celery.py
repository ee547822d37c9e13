"""The Celery app, configured from Django settings (namespace CELERY_)."""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

app = Celery("parlance")
app.config_from_object("django.conf:settings", namespace="CELERY")
# `default` carries ingestion and reports; `ml` carries training, bulk inference and
# generation (routed by CELERY_TASK_ROUTES), so GPU workers can take `ml` alone.
app.conf.task_queues = tuple(Queue(name, Exchange(name), routing_key=name) for name in ("default", "ml"))
app.autodiscover_tasks()
