"""A story generation streamed by a real ml worker process with the tiny LM."""

import time

import pytest

from entertainment import generation, services
from entertainment.models import GenerationJob
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_streams_text_into_the_job_and_appends_the_segment(writer, story, active_lm, mlcore_home,
                                                                     tmp_path):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    services.segment_append(story=story, text="once upon a time the keeper lit the lamp .")
    env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home)}
    with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="ml", extra_env=env, log_dir=tmp_path):
        job = generation.story_generate(owner=writer, story=story, mode="continue",
                                        # Greedy: the random tiny model then writes all 200 tokens (sampled, it
                                        # soon picks its end token, and 9 tokens stream in one or two flushes).
                                        params={"seed": 11, "temperature": 0.0, "max_new_tokens": 200,
                                                "stop": ["NEVER-SEEN"]})
        seen, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            row = GenerationJob.objects.values("state", "text").get(pk=job.pk)
            if row["text"] and (not seen or seen[-1] != row["text"]):
                seen.append(row["text"])
            if row["state"] not in ("queued", "running"):
                break
            time.sleep(0.002)  # the tiny model writes ~1,000 tokens/s: a flush (every 8) lasts a few ms
    job.refresh_from_db()
    assert job.state == "done", job.error
    assert len(seen) >= 2, "the text should be seen growing while the worker writes"
    assert all(job.text.startswith(partial.strip()) for partial in seen)
    assert [len(t) for t in seen] == sorted(len(t) for t in seen)
    assert job.tokens > 0 and job.tokens_per_second > 0 and job.context["prompt"].endswith("lit the lamp .")
    assert [text for _, text in services.story_text(story=story)][-1] == job.text
