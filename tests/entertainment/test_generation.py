"""Generation jobs run in this process with the tiny LM: context, streaming into the row, results, cancel."""

import pytest

from entertainment import generation, services
from entertainment.models import GenerationJob

pytestmark = pytest.mark.django_db

PARAMS = {"seed": 3, "temperature": 1.0, "max_new_tokens": 12}


def test_continue_streams_into_the_job_and_appends_a_segment(writer, story, active_lm):
    services.segment_append(story=story, text="the keeper lit the lamp at the lighthouse .")
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    assert job.state == "queued" and job.celery_id
    assert generation.generation_run(job_id=job.pk) == "done"
    assert generation.generation_run(job_id=job.pk) == "skipped"  # a redelivered task does nothing twice
    job.refresh_from_db()
    assert job.state == "done" and job.text and job.tokens > 0 and job.tokens_per_second > 0
    assert job.started and job.finished
    segments = services.story_text(story=story)
    assert len(segments) == 2 and segments[1][1] == job.text
    alternative = story.segments.get(position=2).active_alternative
    assert alternative.source == "generated" and alternative.job_id == job.pk
    # The exact prompt and what went into it are kept with the job.
    prompt = job.context["prompt"]
    assert prompt.startswith("Genre: mystery\nPremise: The lamp goes dark on the stormiest night.\nTold by Maren.")
    assert "The lighthouse stands on Gull Rock." in prompt and "[Author's note: Keep it eerie.]" in prompt
    assert job.context["sampling"]["seed"] == 3 and job.context["available_tokens"] == 256 - 12 - 8
    report = {(p["name"], p["included"]) for p in job.context_report}
    assert {("Memory", True), ("Lighthouse", True), ("Author's note", True), ("Recent text", True)} <= report


def test_the_same_seed_writes_the_same_text_and_regenerate_keeps_alternatives(writer, story, active_lm):
    first = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    generation.generation_run(job_id=first.pk)
    again = generation.story_generate(owner=writer, story=story, mode="regenerate", params=PARAMS)
    generation.generation_run(job_id=again.pk)
    other = generation.story_generate(owner=writer, story=story, mode="regenerate", params={**PARAMS, "seed": 99})
    generation.generation_run(job_id=other.pk)
    first.refresh_from_db()
    again.refresh_from_db()
    other.refresh_from_db()
    segment = story.segments.get()
    texts = list(segment.alternatives.order_by("id").values_list("text", flat=True))
    assert texts == [first.text, again.text, other.text]
    assert first.text == again.text  # regenerate reads the same context: same seed, same text
    assert segment.active_alternative.text == other.text
    assert services.segment_swipe(segment=segment, step=-1).text == again.text


def test_blocklisted_words_are_masked_in_the_result(writer, story, active_lm):
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    generation.generation_run(job_id=job.pk)
    job.refresh_from_db()
    word = job.text.split()[0]
    services.project_blocklist_save(project=story.project, blocklist=word)
    services.story_undo(story=story)
    masked = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    generation.generation_run(job_id=masked.pk)
    masked.refresh_from_db()
    assert word not in masked.text.split() and "*" * len(word) in masked.text
    assert services.story_text(story=story)[0][1] == masked.text


def test_cancel_before_the_worker_starts_means_it_never_runs(writer, story, active_lm):
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    assert generation.job_cancel(job=job) is True
    assert generation.generation_run(job_id=job.pk) == "skipped"
    assert generation.job_cancel(job=job) is False
    assert not story.segments.exists()


def test_cancel_while_streaming_stops_between_pieces(writer, story, active_lm, monkeypatch):
    real_generate = generation.ml.generate
    pieces_read = []

    def generate_then_click_cancel(*args, **kwargs):
        for piece in real_generate(*args, **kwargs):
            pieces_read.append(piece)
            if len(pieces_read) == 2:  # the writer presses Cancel while the model writes
                GenerationJob.objects.filter(pk=job.pk).update(state="cancelled")
            yield piece

    monkeypatch.setattr(generation.ml, "generate", generate_then_click_cancel)
    monkeypatch.setattr(generation, "FLUSH_PIECES", 1)
    job = generation.story_generate(owner=writer, story=story, mode="continue",
                                    params={**PARAMS, "max_new_tokens": 60})
    assert generation.generation_run(job_id=job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.state == "cancelled"
    assert len(pieces_read) <= 3  # stopped at the next flush, not after 60 tokens
    assert not story.segments.exists()


def test_dialogue_job_writes_n_candidates_with_the_persona_in_the_prompt(writer, tree, maren, active_lm):
    root = services.node_add(tree=tree, speaker=maren, text="Who knocks at the lighthouse door?")
    job = generation.dialogue_generate(owner=writer, tree=tree, character=maren, player_line="the keeper ?",
                                       parent=root, count=3, params={"seed": 5, "temperature": 1.0,
                                                                     "max_new_tokens": 8})
    assert generation.generation_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    prompt = job.context["prompt"]
    assert prompt.startswith("[Character: Maren]\nPersona: The lighthouse keeper, sixty, wry.")
    assert "Scene: Night; rain on the glass." in prompt
    assert prompt.endswith("Maren: Who knocks at the lighthouse door?\nPlayer: the keeper ?\nMaren:")
    assert job.parameters["count"] == 3 and job.state == "done"
    # Three seeds (5, 6, 7) give three different replies; the same seed alone gives the first again.
    assert len(job.candidates) == 3 and len(set(job.candidates)) == 3
    again = generation.dialogue_generate(owner=writer, tree=tree, character=maren, player_line="the keeper ?",
                                         parent=root, count=1, params={"seed": 5, "temperature": 1.0,
                                                                       "max_new_tokens": 8})
    generation.generation_run(job_id=again.pk)
    again.refresh_from_db()
    assert again.candidates == job.candidates[:1]


def test_a_context_that_cannot_fit_fails_the_job_with_the_reason(writer, story, active_lm):
    services.story_save(project=story.project, story=story, memory="word " * 300)
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    assert generation.generation_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.state == "failed" and "Shorten them" in job.error


def test_one_generation_at_a_time_per_story_and_a_rate_limit(writer, story, settings, active_lm):
    settings.ENTERTAINMENT_JOBS_PER_MINUTE = 2
    job = generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    with pytest.raises(generation.GenerationBusy):
        generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    generation.job_cancel(job=job)
    generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
    with pytest.raises(generation.RateLimited, match="2 generations a minute"):
        generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)
