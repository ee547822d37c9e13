"""Style fine-tuning: a writer's corpus trains a LoRA adapter that story generation then uses, if chosen."""

import random

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from entertainment import generation
from entertainment.models import Project
from mlcore import runtime
from mlcore import services as ml_services

pytestmark = pytest.mark.django_db

WORDS = "once upon a time the keeper lit lamp . , profit rose shares record sales board meeting held".split()
_rng = random.Random(7)
CORPUS = "\n\n".join(" ".join(_rng.choice(WORDS) for _ in range(14)) for _ in range(40)).encode()


def upload(client, project, data=CORPUS, name="my-prose.txt"):
    return client.post(reverse("entertainment:style_upload", args=[project.pk]),
                       {"corpus": SimpleUploadedFile(name, data), "epochs": 1})


def test_an_empty_corpus_is_refused_with_the_reason(client, writer, world, active_lm):
    client.force_login(writer)
    response = upload(client, world, data=b"  \n ")
    assert response.status_code == 400 and "The corpus is empty." in response.content.decode()
    world.refresh_from_db()
    assert world.style_job is None


def test_the_corpus_trains_an_adapter_that_stories_use_when_chosen(client, writer, world, story, active_lm,
                                                                   django_capture_on_commit_callbacks):
    client.force_login(writer)
    with django_capture_on_commit_callbacks(execute=False):
        assert upload(client, world).status_code == 302
    world.refresh_from_db()
    job = world.style_job
    assert (job.state, job.scope, job.task, job.params) == ("queued", f"project:{world.pk}", "entertainment.story",
                                                           {"epochs": 1})
    assert job.dataset.kind == "text" and job.dataset.rows_kept == 40
    again = upload(client, world)
    assert again.status_code == 400 and "already running" in again.content.decode()
    status = client.get(reverse("entertainment:style_status", args=[world.pk])).json()
    assert status["state"] == "queued" and status["active"] is True

    refused = client.post(reverse("entertainment:style_use", args=[world.pk]), {"use": "1"})
    assert refused.status_code == 400 and "no trained style" in refused.content.decode()

    assert ml_services.finetune_run(job_id=job.pk, worker="inline") == "succeeded"
    page = client.get(reverse("entertainment:project", args=[world.pk])).content.decode()
    assert "Use this style for stories" in page
    status = client.get(reverse("entertainment:style_status", args=[world.pk])).json()
    assert status["state"] == "succeeded" and status["perplexity_before"] > 1 and status["perplexity_after"] > 1

    client.post(reverse("entertainment:style_use", args=[world.pk]), {"use": "1"})
    world.refresh_from_db()
    job.refresh_from_db()
    assert world.use_style is True and job.result_version.state == "active"

    adapter_path = job.result_version.artifact_path
    runtime.cache.clear()
    first = generation.story_generate(owner=writer, story=story, mode="continue", params={"seed": 1,
                                                                                          "max_new_tokens": 4})
    generation.generation_run(job_id=first.pk)
    assert any(key[2] and key[2].endswith(adapter_path) for key in runtime.cache.keys())

    client.post(reverse("entertainment:style_use", args=[world.pk]), {"use": "0"})
    assert Project.objects.get(pk=world.pk).use_style is False
    runtime.cache.clear()
    second = generation.story_generate(owner=writer, story=story, mode="continue", params={"seed": 1,
                                                                                           "max_new_tokens": 4})
    generation.generation_run(job_id=second.pk)
    assert runtime.cache.keys() and all(key[2] is None for key in runtime.cache.keys())
