"""A web process loads the embedding model as it starts (gunicorn's post_worker_init), unless told not to."""

import logging
import time

import pytest

from core import gunicorn_conf, warm
from mlcore import runtime


def _encoder_loaded(spec: str) -> bool:
    return any(spec in str(key) for key in runtime.cache.keys())


@pytest.mark.django_db(transaction=True)
def test_a_gunicorn_worker_loads_the_embedding_model_as_it_starts(settings, tiny_encoder_spec, mlcore_home):
    settings.PARLANCE_WARM_MODELS = True
    assert not _encoder_loaded(tiny_encoder_spec)
    gunicorn_conf.post_worker_init(worker=None)
    deadline = time.monotonic() + 120
    while not _encoder_loaded(tiny_encoder_spec) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _encoder_loaded(tiny_encoder_spec)


def test_warming_is_off_when_the_setting_says_so(settings, tiny_encoder_spec):
    settings.PARLANCE_WARM_MODELS = False
    assert warm.models_warm_start() is None and not runtime.cache.keys()


@pytest.mark.django_db
def test_a_model_that_cannot_load_is_logged_not_raised(monkeypatch, mlcore_home, tmp_path, caplog):
    monkeypatch.setenv("MLCORE_ENCODER", str(tmp_path / "no-such-model"))
    with caplog.at_level(logging.ERROR, logger="core.warm"):
        warm._warm()  # what the thread runs
    assert "warming the models up failed" in caplog.text and "no-such-model" in caplog.text


@pytest.mark.django_db(transaction=True)  # the warming closes its thread's connection: here, the test's own
@pytest.mark.parametrize("rerank", [True, False])
def test_the_tutor_model_is_warmed_too_when_it_breaks_ties_in_the_web_process(settings, tiny_encoder_spec,
                                                                               tiny_lm_dir, mlcore_home, rerank):
    from mlcore import services
    from mlcore.models import Family, Task

    settings.EDUCATION_TUTOR_LIKELIHOOD_RERANK = rerank
    warm._warm()  # no tutor model registered: the embedding model alone, and no error
    assert _encoder_loaded(tiny_encoder_spec) and not _encoder_loaded(str(tiny_lm_dir))
    version = services.model_version_register(task=Task.TUTOR, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
    services.model_version_activate(version=version)
    warm._warm()
    assert _encoder_loaded(str(tiny_lm_dir)) is rerank
