"""Gunicorn hooks (`--config python:core.gunicorn_conf`, as the Procfile runs it); flags set the rest."""


def post_worker_init(worker):
    """In each worker process, once the application is loaded: start loading the models (core.warm)."""
    from core.warm import models_warm_start

    models_warm_start()
