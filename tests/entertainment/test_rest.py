"""The story studio's JSON API (/api/v1/stories/): writers only, own objects only, generate → poll → cancel."""

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import Role
from entertainment import generation, services
from entertainment.models import GenerationJob, Project, Story

pytestmark = [pytest.mark.django_db]

API = "/api/v1/stories"
PARAMS = {"seed": 3, "temperature": 1.0, "max_new_tokens": 12}


def api_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(writer):
    return api_for(writer)


def _urls(world, story, tree, job):
    return [("get", f"{API}/projects/{world.pk}/stories/"), ("post", f"{API}/projects/{world.pk}/stories/"),
            ("get", f"{API}/stories/{story.pk}/"), ("post", f"{API}/stories/{story.pk}/generate/"),
            ("post", f"{API}/trees/{tree.pk}/generate/"), ("get", f"{API}/trees/{tree.pk}/export/json/"),
            ("get", f"{API}/jobs/{job.pk}/"), ("post", f"{API}/jobs/{job.pk}/cancel/"),
            ("post", f"{API}/jobs/{job.pk}/accept/")]


@pytest.fixture
def job(writer, story):
    return generation.story_generate(owner=writer, story=story, mode="continue", params=PARAMS)


def test_requests_without_a_token_are_401(world, story, tree, job):
    for method, url in [("get", f"{API}/projects/"), *_urls(world, story, tree, job)]:
        assert getattr(APIClient(), method)(url, {}, format="json").status_code == 401, url


@pytest.mark.parametrize("role", [Role.ANALYST, Role.STUDENT, Role.TEACHER, Role.OPERATOR])
def test_other_roles_are_403(make_user, role, world, story, tree, job):
    client = api_for(make_user(role))
    for method, url in [("get", f"{API}/projects/"), *_urls(world, story, tree, job)]:
        response = getattr(client, method)(url, {}, format="json")
        assert response.status_code == 403, url
        assert response.json()["detail"] == "Your account does not have a role that opens this endpoint."


def test_another_writers_objects_are_404_and_nothing_changes(other_writer, world, story, tree, job):
    client = api_for(other_writer)
    for method, url in _urls(world, story, tree, job):
        assert getattr(client, method)(url, {"title": "Mine now", "mode": "continue"},
                                       format="json").status_code == 404, url
    assert client.get(f"{API}/projects/").json()["count"] == 0
    assert Story.objects.count() == 1 and GenerationJob.objects.get().state == "queued"


def test_projects_list_only_your_own_with_counts(api, writer, other_writer, world, story, tree,
                                                 django_assert_max_num_queries):
    Project.objects.create(owner=other_writer, title="Not yours")
    second = Project.objects.create(owner=writer, title="Second world")
    with django_assert_max_num_queries(6):
        body = api.get(f"{API}/projects/").json()
    assert body["count"] == 2
    rows = {row["title"]: row for row in body["results"]}
    assert rows["Gull Rock"] | {"created": None} == {
        "id": world.pk, "title": "Gull Rock", "description": "A lighthouse island.", "created": None,
        "stories": 1, "characters": 1, "lore_entries": 2, "dialogue_trees": 1}
    assert (rows["Second world"]["id"], rows["Second world"]["stories"]) == (second.pk, 0)


def test_create_a_story_then_list_and_read_it(api, world):
    response = api.post(f"{API}/projects/{world.pk}/stories/", {
        "title": "  The Drowned Bell ", "genre": "folk horror", "premise": "A bell rings under the sea.",
        "authors_note": "Slow and cold."}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    story = Story.objects.get(pk=created["id"])
    assert (story.project, story.title, story.genre, story.authors_note) == (
        world, "The Drowned Bell", "folk horror", "Slow and cold.")
    assert created["segments"] == [] and created["project"] == world.pk
    services.segment_append(story=story, text="The bell rang at dawn.")
    segment = story.segments.get()
    services.segment_edit(segment=segment, text="The bell rang twice at dawn.")
    listed = api.get(f"{API}/projects/{world.pk}/stories/").json()
    assert [row["title"] for row in listed["results"]] == ["The Drowned Bell"]
    detail = api.get(f"{API}/stories/{story.pk}/").json()
    assert detail["segments"] == [{"id": segment.pk, "position": 1, "text": "The bell rang twice at dawn.",
                                   "source": "edited", "alternatives": 2, "shown": 2}]


@pytest.mark.parametrize(("body", "errors"), [
    ({"title": ""}, {"title": ["This field may not be blank."]}),
    ({"genre": "x"}, {"title": ["This field is required."]}),
    ({"title": "T" * 201}, {"title": ["Ensure this field has no more than 200 characters."]}),
    ({"title": ["a", "b"]}, {"title": ["Not a valid string."]}),
])
def test_bad_story_fields_are_400_with_the_field(api, world, body, errors):
    response = api.post(f"{API}/projects/{world.pk}/stories/", body, format="json")
    assert response.status_code == 400 and response.json() == errors
    assert not Story.objects.filter(project=world).exclude(title="The Dark Lamp").exists()


def test_generate_poll_and_read_the_story_round_trip(api, story, active_lm):
    services.segment_append(story=story, text="the keeper lit the lamp at the lighthouse .")
    response = api.post(f"{API}/stories/{story.pk}/generate/", {"mode": "continue", **PARAMS, "stop": ["\\n\\n"]},
                        format="json")
    assert response.status_code == 201, response.json()
    started = response.json()
    assert (started["state"], started["active"], started["kind"], started["mode"]) == (
        "queued", True, "story", "continue")
    assert started["parameters"]["seed"] == 3 and started["parameters"]["stop"] == ["\n\n"]
    assert api.get(f"{API}/jobs/{started['id']}/").json()["state"] == "queued"

    assert generation.generation_run(job_id=started["id"]) == "done"  # what the ml worker does

    polled = api.get(f"{API}/jobs/{started['id']}/").json()
    job = GenerationJob.objects.get(pk=started["id"])
    assert (polled["state"], polled["active"], polled["text"], polled["tokens"]) == ("done", False, job.text,
                                                                                    job.tokens)
    assert polled["tokens_per_second"] > 0 and polled["prompt_tokens"] == job.context["prompt_tokens"]
    parts = {(p["name"], p["kind"], p["included"]) for p in polled["context_report"]}
    assert {("Memory", "memory", True), ("Lighthouse", "lore", True), ("Recent text", "recent_text", True)} <= parts
    segments = api.get(f"{API}/stories/{story.pk}/").json()["segments"]
    assert [s["text"] for s in segments] == ["the keeper lit the lamp at the lighthouse .", job.text]
    assert segments[1]["source"] == "generated"
    cancel = api.post(f"{API}/jobs/{started['id']}/cancel/")
    assert cancel.status_code == 409 and cancel.json() == {"detail": "That generation had already ended (done)."}


def test_cancel_a_queued_generation(api, story, job):
    response = api.post(f"{API}/jobs/{job.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["active"]) == ("cancelled", False)
    assert generation.generation_run(job_id=job.pk) == "skipped"
    assert not story.segments.exists()


def test_busy_is_409_and_the_rate_limit_is_429(api, story, world, settings):
    settings.ENTERTAINMENT_JOBS_PER_MINUTE = 2
    url = f"{API}/stories/{story.pk}/generate/"
    assert api.post(url, {"mode": "continue"}, format="json").status_code == 201
    busy = api.post(url, {"mode": "continue"}, format="json")
    assert busy.status_code == 409
    assert busy.json() == {"detail": "A generation is already running here; wait for it or cancel it."}
    other = services.story_save(project=world, title="Another")
    assert api.post(f"{API}/stories/{other.pk}/generate/", {"mode": "continue"}, format="json").status_code == 201
    third = services.story_save(project=world, title="A third")
    limited = api.post(f"{API}/stories/{third.pk}/generate/", {"mode": "continue"}, format="json")
    assert limited.status_code == 429
    assert limited.json() == {"detail": "You can start 2 generations a minute; wait a moment and try again."}
    assert GenerationJob.objects.count() == 2


@pytest.mark.parametrize(("body", "errors"), [
    ({}, {"mode": ["This field is required."]}),
    ({"mode": "sideways"}, {"mode": ['"sideways" is not a valid choice.']}),
    ({"mode": "continue", "temperature": 5}, {"temperature": ["Ensure this value is less than or equal to 2."]}),
    ({"mode": "continue", "max_new_tokens": 0}, {"max_new_tokens": ["Ensure this value is greater than or equal "
                                                                    "to 1."]}),
    ({"mode": "continue", "max_new_tokens": 401}, {"max_new_tokens": ["Ensure this value is less than or equal "
                                                                      "to 400."]}),
    ({"mode": "continue", "top_k": "many"}, {"top_k": ["A valid integer is required."]}),
    ({"mode": "continue", "preset": "wild"}, {"preset": ['"wild" is not a valid choice.']}),
    ({"mode": "continue", "stop": ["x"] * 9}, {"stop": ["Ensure this field has no more than 8 elements."]}),
])
def test_bad_generation_parameters_are_400_with_messages(api, story, body, errors):
    response = api.post(f"{API}/stories/{story.pk}/generate/", body, format="json")
    assert response.status_code == 400 and response.json() == errors
    assert not GenerationJob.objects.exists()


def test_regenerate_with_nothing_to_regenerate_is_400(api, story):
    response = api.post(f"{API}/stories/{story.pk}/generate/", {"mode": "regenerate"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "There is no segment to regenerate yet; continue first."}


def test_dialogue_candidates_round_trip(api, writer, tree, maren, active_lm):
    root = services.node_add(tree=tree, speaker=maren, text="Who knocks at the lighthouse door?")
    response = api.post(f"{API}/trees/{tree.pk}/generate/", {
        "character": maren.pk, "player_line": "the keeper ?", "parent": root.pk, "count": 2, "seed": 5,
        "temperature": 1.0, "max_new_tokens": 8}, format="json")
    assert response.status_code == 201, response.json()
    started = response.json()
    assert (started["kind"], started["mode"], started["character"], started["parent_node"]) == (
        "dialogue", "candidates", maren.pk, root.pk)
    assert generation.generation_run(job_id=started["id"]) == "done"
    polled = api.get(f"{API}/jobs/{started['id']}/").json()
    assert polled["state"] == "done" and len(polled["candidates"]) == 2
    assert polled["candidates"] == GenerationJob.objects.get(pk=started["id"]).candidates
    assert ("Maren", "persona", True) in {(p["name"], p["kind"], p["included"]) for p in polled["context_report"]}

    accept = f"{API}/jobs/{started['id']}/accept/"
    assert api.post(accept, {"index": 2}, format="json").json() == {"detail": "There is no such reply."}
    response = api.post(accept, {"index": 1, "text": "  Come in, then.  "}, format="json")
    assert response.status_code == 201, response.json()
    reply = response.json()
    assert (reply["speaker"], reply["speaker_name"], reply["text"], reply["is_root"]) == (
        maren.pk, "Maren", "Come in, then.", False)
    player = tree.nodes.get(choices_out__to_node=reply["id"])
    assert (player.speaker_id, player.text) == (None, "the keeper ?")
    assert list(root.choices_out.values_list("to_node", flat=True)) == [player.pk]
    again = api.post(accept, {"index": 0}, format="json")
    assert again.status_code == 400 and "in the tree already" in again.json()["detail"]
    assert tree.nodes.count() == 3


def test_accepting_a_story_job_or_an_unfinished_one_is_refused(api, job):
    response = api.post(f"{API}/jobs/{job.pk}/accept/", {"index": 0}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Only a finished dialogue job has replies to accept."}
    assert api.post(f"{API}/jobs/{job.pk}/accept/", {"index": -1}, format="json").status_code == 400


def test_bad_dialogue_requests_are_400(api, tree, maren, other_writer):
    stranger_world = Project.objects.create(owner=other_writer, title="Elsewhere")
    stranger = services.character_save(project=stranger_world, name="Stranger")
    url = f"{API}/trees/{tree.pk}/generate/"
    cases = [
        ({"character": stranger.pk, "player_line": "Hi"},
         {"character": ["There is no such character in this tree's world."]}),
        ({"character": maren.pk, "player_line": "Hi", "parent": 999999},
         {"parent": ["That line is not in this tree."]}),
        ({"character": maren.pk, "player_line": "Hi", "count": 6},
         {"count": ["Ensure this value is less than or equal to 5."]}),
        ({"character": maren.pk, "player_line": "Hi", "max_new_tokens": 121},
         {"max_new_tokens": ["Ensure this value is less than or equal to 120."]}),
        ({"character": maren.pk, "player_line": "   "}, {"player_line": ["This field may not be blank."]}),
    ]
    for body, errors in cases:
        response = api.post(url, body, format="json")
        assert (response.status_code, response.json()) == (400, errors), body
    assert not GenerationJob.objects.exists()


def test_tree_exports_in_three_formats(api, tree, maren):
    root = services.node_add(tree=tree, speaker=maren, text="Who knocks?")
    services.node_add(tree=tree, speaker=None, text="A friend.", parent=root, choice_text="A friend.")
    exported = api.get(f"{API}/trees/{tree.pk}/export/json/")
    assert exported.status_code == 200 and exported["Content-Type"] == "application/json; charset=utf-8"
    assert exported["Content-Disposition"] == 'attachment; filename="at-the-door.json"'
    data = json.loads(exported.content)
    assert [(n["speaker"], n["text"]) for n in data["nodes"]] == [("Maren", "Who knocks?"), ("Player", "A friend.")]
    ink = api.get(f"{API}/trees/{tree.pk}/export/ink/")
    assert ink["Content-Type"] == "text/plain; charset=utf-8" and "Maren: Who knocks?" in ink.content.decode()
    yarn = api.get(f"{API}/trees/{tree.pk}/export/yarn/").content.decode()
    assert yarn.startswith("title: ") and "Maren: Who knocks?" in yarn
    assert api.get(f"{API}/trees/{tree.pk}/export/pdf/").status_code == 404


def test_the_openapi_schema_with_the_stories_api_validates(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/stories/projects/{id}/stories/", "/api/v1/stories/stories/{id}/generate/",
                 "/api/v1/stories/jobs/{id}/cancel/", "/api/v1/stories/trees/{id}/export/{fmt}/"):
        assert path in text
