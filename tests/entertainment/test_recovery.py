"""Jobs a lost worker left behind: failed after the threshold, so the story or tree is free again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from entertainment import generation, tasks
from entertainment.models import GenerationJob

pytestmark = pytest.mark.django_db

PARAMS = {"seed": 3, "temperature": 1.0, "max_new_tokens": 12}


def _job(owner, story, **fields):
    job = generation.story_generate(owner=owner, story=story, mode="continue", params=PARAMS)
    GenerationJob.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def test_a_running_job_silent_past_the_threshold_fails_and_the_story_is_free(writer, story, settings):
    settings.ENTERTAINMENT_JOB_STALE_SECONDS = 120
    now = timezone.now()
    job = _job(writer, story, state="running", started=now - timedelta(minutes=5),
               heartbeat=now - timedelta(seconds=121), text="The lamp flickered and")
    with pytest.raises(generation.GenerationBusy):
        generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)

    assert generation.generation_jobs_recover() == {"running": [job.pk], "queued": []}

    job.refresh_from_db()
    assert job.state == "failed" and job.finished is not None
    assert job.error == "The worker stopped while writing; the text so far is kept — generate again."
    assert job.text == "The lamp flickered and"  # the text so far stays readable
    again = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    assert again.state == "queued"
    assert generation.generation_jobs_recover() == {"running": [], "queued": []}  # nothing twice


def test_a_job_that_wrote_recently_is_left_alone(writer, story, world):
    from entertainment import services

    now = timezone.now()
    fresh = _job(writer, story, state="running", started=now - timedelta(minutes=10),
                 heartbeat=now - timedelta(seconds=100), text="still writing")
    other_story = services.story_save(project=world, title="Second")
    queued = _job(writer, other_story)  # queued a moment ago: a worker may take it soon

    assert generation.generation_jobs_recover(stale_after=timedelta(seconds=120)) == {"running": [], "queued": []}

    assert GenerationJob.objects.get(pk=fresh.pk).state == "running"
    assert GenerationJob.objects.get(pk=queued.pk).state == "queued"
    # With a threshold below its silence, the same job counts as stale.
    assert generation.generation_jobs_recover(stale_after=timedelta(seconds=60))["running"] == [fresh.pk]


def test_a_running_job_without_any_heartbeat_counts_from_its_start(writer, story):
    now = timezone.now()
    job = _job(writer, story, state="running", started=now - timedelta(seconds=200), heartbeat=None)
    assert generation.generation_jobs_recover(stale_after=timedelta(seconds=300))["running"] == []
    assert generation.generation_jobs_recover(stale_after=timedelta(seconds=120))["running"] == [job.pk]


def test_a_job_queued_for_over_half_an_hour_fails_and_finished_jobs_are_untouched(writer, story, tree, maren):
    now = timezone.now()
    old = _job(writer, story, created=now - timedelta(minutes=31))
    done = GenerationJob.objects.create(owner=writer, project=story.project, kind="story", mode="continue",
                                        story=story, state="done", heartbeat=now - timedelta(days=1), text="Done.")
    tree_job = generation.dialogue_generate(owner=writer, tree=tree, character=maren, player_line="Hello?",
                                            parent=None, count=1, params=PARAMS)
    GenerationJob.objects.filter(pk=tree_job.pk).update(state="running", heartbeat=now - timedelta(hours=1))

    assert tasks.jobs_recover() == {"running": [tree_job.pk], "queued": [old.pk]}

    old.refresh_from_db()
    assert old.state == "failed"
    assert old.error == "No worker took this generation up within 30 minutes; generate again."
    done.refresh_from_db()
    assert (done.state, done.error, done.text) == ("done", "", "Done.")
    assert GenerationJob.objects.get(pk=tree_job.pk).state == "failed"


def test_a_live_worker_writing_after_recovery_stops_and_appends_nothing(writer, story, active_lm, monkeypatch):
    real_generate = generation.ml.generate

    def generate_while_recovery_runs(*args, **kwargs):
        for i, piece in enumerate(real_generate(*args, **kwargs)):
            if i == 1:  # the worker looked dead for a while: the recovery fails it mid-stream
                GenerationJob.objects.filter(pk=job.pk).update(heartbeat=timezone.now() - timedelta(minutes=5))
                assert generation.generation_jobs_recover()["running"] == [job.pk]
            yield piece

    monkeypatch.setattr(generation.ml, "generate", generate_while_recovery_runs)
    monkeypatch.setattr(generation, "FLUSH_PIECES", 1)
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    generation.generation_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and job.error == generation.STALE_RUNNING_ERROR
    assert not story.segments.exists()


def test_running_jobs_record_a_heartbeat_as_they_write(writer, story, active_lm):
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    before = timezone.now()
    assert generation.generation_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    assert job.heartbeat is not None and before <= job.heartbeat <= job.finished


def test_the_threshold_comes_from_the_setting(writer, story, settings):
    job = _job(writer, story, state="running", started=timezone.now() - timedelta(seconds=45),
               heartbeat=timezone.now() - timedelta(seconds=40))
    assert generation.generation_jobs_recover()["running"] == []  # the default: 120 s
    settings.ENTERTAINMENT_JOB_STALE_SECONDS = 30
    assert generation.generation_jobs_recover()["running"] == [job.pk]
