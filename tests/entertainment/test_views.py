"""Pages: permissions for every view, escaping, the 429, query-count pins and the main flows."""

import json

import pytest
from django.urls import reverse

from core.roles import Role
from entertainment import generation, services
from entertainment.models import DialogueNode, GenerationJob, Project, Story

pytestmark = pytest.mark.django_db

XSS = "<script>alert('x')</script>"


@pytest.fixture
def objects(writer, world, maren, story, tree):
    segment = services.segment_append(story=story, text="The lamp flickered.")
    root = services.node_add(tree=tree, speaker=maren, text="Who knocks?")
    reply = services.node_add(tree=tree, speaker=None, text="Me.", parent=root, choice_text="Answer")
    job = GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue", story=story,
                                       state="done", parameters={"seed": 1})
    return {"project": world.pk, "lore": world.lore_entries.first().pk, "character": maren.pk, "story": story.pk,
            "segment": segment.pk, "tree": tree.pk, "node": reply.pk, "choice": reply.choices_in.get().pk,
            "job": job.pk}


# (url name, the object its pk comes from or None, method)
VIEWS = [
    ("index", None, "get"),
    ("project", "project", "get"), ("blocklist", "project", "post"), ("lore_new", "project", "get"),
    ("style_upload", "project", "post"), ("style_use", "project", "post"), ("style_status", "project", "get"),
    ("character_new", "project", "get"), ("story_new", "project", "post"), ("tree_new", "project", "post"),
    ("lore_edit", "lore", "get"), ("lore_delete", "lore", "post"),
    ("character_edit", "character", "get"), ("character_delete", "character", "post"),
    ("story", "story", "get"), ("story_generate", "story", "post"), ("story_append", "story", "post"),
    ("story_undo", "story", "post"), ("story_export_md", "story", "get"), ("story_export_txt", "story", "get"),
    ("segment_swipe", "segment", "post"), ("segment_edit", "segment", "post"),
    ("job_status", "job", "get"), ("job_cancel", "job", "post"), ("candidate_accept", "job", "post"),
    ("tree", "tree", "get"), ("tree_generate", "tree", "post"), ("node_add", "tree", "post"),
    ("choice_add", "tree", "post"), ("tree_export_json", "tree", "get"), ("tree_export_ink", "tree", "get"),
    ("tree_export_yarn", "tree", "get"), ("node_edit", "node", "post"), ("node_delete", "node", "post"),
    ("choice_delete", "choice", "post"),
]


def url_of(name, obj, objects):
    return reverse(f"entertainment:{name}", args=[objects[obj]] if obj else [])


@pytest.mark.parametrize(("name", "obj", "method"), VIEWS)
def test_anonymous_users_go_to_login(client, objects, name, obj, method):
    response = getattr(client, method)(url_of(name, obj, objects))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "obj", "method"), VIEWS)
def test_other_roles_get_403(client_with_roles, objects, name, obj, method):
    client = client_with_roles(Role.ANALYST, Role.STUDENT, Role.TEACHER, Role.OPERATOR)
    assert getattr(client, method)(url_of(name, obj, objects)).status_code == 403


@pytest.mark.parametrize(("name", "obj", "method"), [v for v in VIEWS if v[1]])
def test_another_writers_objects_are_404(client, other_writer, objects, name, obj, method):
    client.force_login(other_writer)
    assert getattr(client, method)(url_of(name, obj, objects)).status_code == 404


@pytest.mark.parametrize(("name", "obj"), [(n, o) for n, o, m in VIEWS if m == "get"])
def test_the_owner_opens_every_page(client, writer, objects, name, obj):
    client.force_login(writer)
    assert client.get(url_of(name, obj, objects)).status_code == 200


def test_a_writer_sees_only_their_own_worlds(client, writer, other_writer, world):
    Project.objects.create(owner=other_writer, title="Secret Isle")
    client.force_login(writer)
    body = client.get(reverse("entertainment:index")).content.decode()
    assert "Gull Rock" in body and "Secret Isle" not in body


def test_user_and_generated_text_is_escaped(client, writer, world, story, tree, maren):
    services.story_save(project=world, story=story, title=XSS, premise=XSS)
    services.segment_append(story=story, text=XSS)
    GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue", story=story,
                                 state="done", text=XSS, context={"prompt": XSS, "prompt_tokens": 1,
                                                                  "available_tokens": 2},
                                 context_report=[{"name": XSS, "kind": "lore", "tokens": 1, "included": False,
                                                  "reason": "over budget", "trigger": XSS, "depth": 0}])
    services.node_add(tree=tree, speaker=maren, text=XSS)
    GenerationJob.objects.create(owner=writer, project=world, kind="dialogue", mode="candidates", tree=tree,
                                 character=maren, player_line=XSS, state="done", candidates=[XSS])
    client.force_login(writer)
    for url in (reverse("entertainment:story", args=[story.pk]), reverse("entertainment:tree", args=[tree.pk]),
                reverse("entertainment:project", args=[world.pk])):
        body = client.get(url).content.decode()
        assert "<script>alert" not in body
    story_body = client.get(reverse("entertainment:story", args=[story.pk])).content.decode()
    assert story_body.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 5
    tree_body = client.get(reverse("entertainment:tree", args=[tree.pk])).content.decode()
    assert tree_body.count("&lt;script&gt;") >= 3


def test_generate_queues_a_job_and_the_status_endpoint_reports_it(client, writer, story):
    client.force_login(writer)
    response = client.post(reverse("entertainment:story_generate", args=[story.pk]),
                           {"mode": "continue", "preset": "creative", "max_new_tokens": 50, "seed": 7,
                            "stop": "THE END\n\\n\\n"})
    assert response.status_code == 302
    job = GenerationJob.objects.get(story=story)
    assert job.parameters == {"preset": "creative", "temperature": 1.1, "top_p": 0.98, "top_k": 100,
                              "repetition_penalty": 1.05, "max_new_tokens": 50, "seed": 7, "seed_random": False,
                              "stop": ["THE END", "\n\n"]}
    status = client.get(reverse("entertainment:job_status", args=[job.pk])).json()
    assert status == {"id": job.pk, "kind": "story", "mode": "continue", "state": "queued", "active": True,
                      "text": "", "tokens": 0, "tokens_per_second": 0.0, "candidates": [], "error": "",
                      "finished": None}
    page = client.get(reverse("entertainment:story", args=[story.pk])).content.decode()
    assert 'data-active="true"' in page and reverse("entertainment:job_status", args=[job.pk]) in page
    cancel = client.post(reverse("entertainment:job_cancel", args=[job.pk]), HTTP_ACCEPT="application/json")
    assert cancel.json()["state"] == "cancelled" and cancel.json()["active"] is False


def test_bad_generation_input_is_a_400_with_the_reason_and_no_job(client, writer, story):
    client.force_login(writer)
    response = client.post(reverse("entertainment:story_generate", args=[story.pk]),
                           {"mode": "continue", "preset": "balanced", "max_new_tokens": 5000, "temperature": "hot"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Ensure this value is less than or equal to 400" in body and "Enter a number" in body
    regen = client.post(reverse("entertainment:story_generate", args=[story.pk]),
                        {"mode": "regenerate", "preset": "balanced", "max_new_tokens": 10})
    assert regen.status_code == 400 and "no segment to regenerate" in regen.content.decode()
    assert not GenerationJob.objects.exists()


def test_the_rate_limit_answers_429_with_a_clear_message(client, writer, world, settings):
    settings.ENTERTAINMENT_JOBS_PER_MINUTE = 2
    stories = [Story.objects.create(project=world, title=f"S{i}") for i in range(3)]
    client.force_login(writer)
    data = {"mode": "continue", "preset": "balanced", "max_new_tokens": 10}
    for s in stories[:2]:
        assert client.post(reverse("entertainment:story_generate", args=[s.pk]), data).status_code == 302
    response = client.post(reverse("entertainment:story_generate", args=[stories[2].pk]), data)
    assert response.status_code == 429
    assert "You can start 2 generations a minute" in response.content.decode()
    assert GenerationJob.objects.count() == 2
    busy = client.post(reverse("entertainment:story_generate", args=[stories[0].pk]), data)
    assert busy.status_code in (409, 429)


def test_story_page_flow_append_swipe_edit_undo_export(client, writer, story):
    client.force_login(writer)
    client.post(reverse("entertainment:story_append", args=[story.pk]), {"text": "The lamp flickered."})
    segment = story.segments.get()
    client.post(reverse("entertainment:segment_edit", args=[segment.pk]), {"text": "The lamp went out."})
    page = client.get(reverse("entertainment:story", args=[story.pk])).content.decode()
    assert "The lamp went out." in page and "version 2 of 2" in page
    client.post(reverse("entertainment:segment_swipe", args=[segment.pk]), {"direction": "prev"})
    page = client.get(reverse("entertainment:story", args=[story.pk])).content.decode()
    assert "The lamp flickered." in page and "version 1 of 2" in page
    md = client.get(reverse("entertainment:story_export_md", args=[story.pk]))
    assert md["Content-Disposition"] == f'attachment; filename="story-{story.pk}.md"'
    assert "The lamp flickered." in md.content.decode()
    client.post(reverse("entertainment:story_undo", args=[story.pk]))
    assert not story.segments.exists()
    empty = client.post(reverse("entertainment:story_append", args=[story.pk]), {"text": "  "})
    assert empty.status_code == 400 and not story.segments.exists()


def test_tree_page_flow_lines_choices_accept_and_export(client, writer, tree, maren):
    client.force_login(writer)
    client.post(reverse("entertainment:node_add", args=[tree.pk]), {"speaker": maren.pk, "text": "Who knocks?"})
    root = DialogueNode.objects.get(tree=tree, is_root=True)
    job = generation.dialogue_generate(owner=writer, tree=tree, character=maren, player_line="A friend.",
                                       parent=root, count=2, params={"seed": 1})
    GenerationJob.objects.filter(pk=job.pk).update(state="done", candidates=["Friends knock softer.", "Enter."])
    page = client.get(reverse("entertainment:tree", args=[tree.pk])).content.decode()
    assert "Friends knock softer." in page and "Accept" in page
    response = client.post(reverse("entertainment:candidate_accept", args=[job.pk]),
                           {"index": 1, "text": "Enter, friend."})
    assert response.status_code == 302
    assert list(tree.nodes.order_by("id").values_list("text", flat=True)) == ["Who knocks?", "A friend.",
                                                                              "Enter, friend."]
    again = client.post(reverse("entertainment:candidate_accept", args=[job.pk]), {"index": 0})
    assert again.status_code == 400 and "in the tree already" in again.content.decode()
    bad = client.post(reverse("entertainment:choice_add", args=[tree.pk]),
                      {"from_node": root.pk, "to_node": 999999, "text": "x"})
    assert bad.status_code == 400 and "That line is not in this tree." in bad.content.decode()
    data = json.loads(client.get(reverse("entertainment:tree_export_json", args=[tree.pk])).content)
    assert [n["text"] for n in data["nodes"]] == ["Who knocks?", "A friend.", "Enter, friend."]
    ink = client.get(reverse("entertainment:tree_export_ink", args=[tree.pk]))
    assert ink["Content-Disposition"] == 'attachment; filename="at-the-door.ink"'


def test_other_writers_character_cannot_be_used_in_my_tree(client, writer, other_writer, tree):
    theirs = Project.objects.create(owner=other_writer, title="Theirs")
    stranger = services.character_save(project=theirs, name="Stranger")
    client.force_login(writer)
    response = client.post(reverse("entertainment:tree_generate", args=[tree.pk]),
                           {"character": stranger.pk, "player_line": "hi", "count": 1, "preset": "balanced",
                            "max_new_tokens": 10})
    assert response.status_code == 400 and not GenerationJob.objects.exists()


def test_list_pages_run_a_fixed_number_of_queries(client, writer, world, django_assert_max_num_queries):
    for i in range(6):
        project = services.project_create(owner=writer, title=f"World {i}")
        services.character_save(project=project, name=f"C{i}")
        s = services.story_save(project=world, title=f"Story {i}")
        services.segment_append(story=s, text="Once.")
        services.lore_entry_save(project=world, title=f"Entry {i}", keys="k", parent=world.lore_entries.first())
        services.character_save(project=world, name=f"Hero {i}")
        t = services.tree_save(project=world, title=f"Tree {i}")
        services.node_add(tree=t, speaker=None, text="Hi.")
    story = world.stories.first()
    tree = world.dialogue_trees.first()
    for i in range(8):
        services.segment_append(story=story, text=f"Segment {i}.")
    previous = tree.nodes.get()
    for i in range(8):
        previous = services.node_add(tree=tree, speaker=world.characters.first(), text=f"Line {i}", parent=previous)
    client.force_login(writer)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("entertainment:index")).status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get(reverse("entertainment:project", args=[world.pk])).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(reverse("entertainment:story", args=[story.pk])).status_code == 200
    with django_assert_max_num_queries(14):
        assert client.get(reverse("entertainment:tree", args=[tree.pk])).status_code == 200


def test_world_lore_and_character_crud(client, writer, world):
    client.force_login(writer)
    response = client.post(reverse("entertainment:index"), {"title": "Gull Rock"})
    assert response.status_code == 400 and "You already have a world called “Gull Rock”" in response.content.decode()
    assert client.post(reverse("entertainment:index"), {"title": ""}).status_code == 400
    created = client.post(reverse("entertainment:index"), {"title": "Far Shoals", "description": "Reefs."})
    far = Project.objects.get(title="Far Shoals")
    assert created["Location"] == reverse("entertainment:project", args=[far.pk])

    lighthouse = world.lore_entries.get(title="Lighthouse")
    response = client.post(reverse("entertainment:lore_new", args=[world.pk]), {
        "title": "Lamp", "keys": "lamp, great lamp", "text": "The lamp burns oil.", "priority": 4,
        "enabled": "on", "can_trigger_others": "on", "parent": lighthouse.pk})
    assert response.status_code == 302
    lamp = world.lore_entries.get(title="Lamp")
    assert (lamp.keys, lamp.priority, lamp.parent, lamp.can_trigger_others) == (["lamp", "great lamp"], 4,
                                                                                lighthouse, True)
    # A parent from another world is not offered, so it is refused by the form.
    other = services.lore_entry_save(project=far, title="Reef", keys="reef")
    bad = client.post(reverse("entertainment:lore_edit", args=[lamp.pk]), {"title": "Lamp", "priority": 0,
                                                                           "parent": other.pk})
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()
    client.post(reverse("entertainment:lore_delete", args=[lighthouse.pk]))
    assert not world.lore_entries.filter(title__in=["Lighthouse", "Lamp"]).exists()  # children go with it

    client.post(reverse("entertainment:character_new", args=[world.pk]), {"name": "Ives", "persona": "Gossip."})
    ives = world.characters.get(name="Ives")
    dup = client.post(reverse("entertainment:character_new", args=[world.pk]), {"name": "Ives"})
    assert dup.status_code == 400 and "already has a character called “Ives”" in dup.content.decode()
    client.post(reverse("entertainment:character_edit", args=[ives.pk]), {"name": "Ives", "persona": "Tavern keeper."})
    ives.refresh_from_db()
    assert ives.persona == "Tavern keeper."
    client.post(reverse("entertainment:character_delete", args=[ives.pk]))
    assert not world.characters.filter(name="Ives").exists()

    client.post(reverse("entertainment:blocklist", args=[world.pk]), {"blocklist": "curse\n\ncurse\nfoul word"})
    world.refresh_from_db()
    assert world.blocked_phrases() == ["curse", "foul word"]


def test_the_story_form_offers_a_chosen_seed_again_but_not_a_random_one(client, writer, story):
    client.force_login(writer)
    url = reverse("entertainment:story_generate", args=[story.pk])
    client.post(url, {"mode": "continue", "preset": "balanced", "max_new_tokens": 10, "seed": 1234})
    page = client.get(reverse("entertainment:story", args=[story.pk])).content.decode()
    assert 'name="seed" value="1234"' in page
    GenerationJob.objects.update(state="done")
    client.post(url, {"mode": "continue", "preset": "balanced", "max_new_tokens": 10})
    page = client.get(reverse("entertainment:story", args=[story.pk])).content.decode()
    assert 'name="seed" value=' not in page
