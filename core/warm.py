"""Warm a web process up: load the embedding model (and the tutor model, which breaks close calls between passages,
unless EDUCATION_TUTOR_LIKELIHOOD_RERANK is off) in a background thread as the process starts.

Called by gunicorn's `post_worker_init` hook (core/gunicorn_conf.py), once per worker process after the fork.
Without it the first tutor question a process answers waits ~2 s for the load. A request that needs the model
meanwhile waits for the same load (the model cache is locked); a failure is logged, never raised.
"""

import logging
import threading

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)


def _warm() -> None:
    from mlcore import api as ml

    try:
        ml.warm_up(lm_tasks=(ml.Task.TUTOR,) if settings.EDUCATION_TUTOR_LIKELIHOOD_RERANK else ())
    except Exception:  # noqa: BLE001  (the page that needs the model reports its own error)
        log.exception("warming the models up failed; the first request that needs them loads them")
    finally:
        connection.close()  # this thread's own connection (the registry lookup) is not kept open


def models_warm_start() -> threading.Thread | None:
    """Start loading the models (PARLANCE_WARM_MODELS); the thread, or None when the setting is off."""
    if not settings.PARLANCE_WARM_MODELS:
        return None
    thread = threading.Thread(target=_warm, name="parlance-warm-models", daemon=True)
    thread.start()
    return thread
