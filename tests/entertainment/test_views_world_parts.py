"""Lore entries and characters share one edit flow and one delete flow: where each goes and what it says."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from entertainment import services

pytestmark = pytest.mark.django_db


def flashes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def project_url(world, section=""):
    return reverse("entertainment:project", args=[world.pk]) + section


# (new page, edit page, delete, the form's fields, the edit page's kind, the world page's section, saved message)
PARTS = [
    ("lore_new", "lore_edit", "lore_delete", {"title": "Lamp", "keys": "lamp", "priority": 0},
     "lore entry", "#lore", "Lore entry saved."),
    ("character_new", "character_edit", "character_delete", {"name": "Ives", "persona": "Gossip."},
     "character", "#characters", "Character saved."),
]


def created(world, new_name):
    return world.lore_entries.get(title="Lamp") if new_name == "lore_new" else world.characters.get(name="Ives")


@pytest.mark.parametrize(("new", "edit", "delete", "fields", "kind", "section", "saved"), PARTS)
def test_create_then_edit_goes_back_to_the_worlds_section(client, writer, world, new, edit, delete, fields, kind,
                                                          section, saved):
    client.force_login(writer)
    blank = client.get(reverse(f"entertainment:{new}", args=[world.pk]))
    assert blank.status_code == 200 and blank.templates[0].name == "entertainment/edit.html"
    assert blank.context["kind"] == kind and blank.context["object"] is None and blank.context["delete_url"] == ""

    response = client.post(reverse(f"entertainment:{new}", args=[world.pk]), fields)
    assert (response.status_code, response["Location"]) == (302, project_url(world, section))
    assert flashes(response) == [saved]

    obj = created(world, new)
    page = client.get(reverse(f"entertainment:{edit}", args=[obj.pk]))
    assert page.status_code == 200 and page.context["object"] == obj
    assert page.context["delete_url"] == reverse(f"entertainment:{delete}", args=[obj.pk])
    response = client.post(reverse(f"entertainment:{edit}", args=[obj.pk]), fields)
    assert (response.status_code, response["Location"]) == (302, project_url(world, section))


@pytest.mark.parametrize(("new", "edit", "delete", "fields", "kind", "section", "saved"), PARTS)
def test_a_refused_save_shows_the_form_again_with_400(client, writer, world, new, edit, delete, fields, kind,
                                                      section, saved):
    client.force_login(writer)
    client.post(reverse(f"entertainment:{new}", args=[world.pk]), fields)
    duplicate = client.post(reverse(f"entertainment:{new}", args=[world.pk]), fields)
    assert duplicate.status_code == 400 and "already has a" in duplicate.content.decode()
    assert duplicate.context["kind"] == kind and created(world, new)  # the first one still stands, alone


def test_deleting_a_lore_entry_says_its_children_went_too(client, writer, world):
    client.force_login(writer)
    lighthouse = world.lore_entries.get(title="Lighthouse")
    response = client.post(reverse("entertainment:lore_delete", args=[lighthouse.pk]))
    assert (response.status_code, response["Location"]) == (302, project_url(world, "#lore"))
    assert flashes(response) == ["Deleted “Lighthouse” and the entries under it."]


def test_deleting_a_character_goes_back_to_the_characters(client, writer, world, maren):
    client.force_login(writer)
    response = client.post(reverse("entertainment:character_delete", args=[maren.pk]))
    assert (response.status_code, response["Location"]) == (302, project_url(world, "#characters"))
    assert flashes(response) == ["Deleted Maren."]


def test_a_character_who_speaks_in_a_tree_is_not_deleted(client, writer, world, maren, tree):
    services.node_add(tree=tree, speaker=maren, text="Who knocks?")
    client.force_login(writer)
    response = client.post(reverse("entertainment:character_delete", args=[maren.pk]))
    assert response.status_code == 400
    assert "Maren speaks lines in a dialogue tree" in response.content.decode()
    assert response.context["back"] == project_url(world)
    assert world.characters.filter(pk=maren.pk).exists()


@pytest.mark.parametrize("name", ["lore_edit", "lore_delete", "character_edit", "character_delete"])
def test_another_writers_entry_or_character_is_404_and_untouched(client, other_writer, world, maren, name):
    client.force_login(other_writer)
    obj = world.lore_entries.get(title="Lighthouse") if name.startswith("lore") else maren
    assert client.post(reverse(f"entertainment:{name}", args=[obj.pk]), {"title": "Mine", "name": "Mine"}
                       ).status_code == 404
    assert type(obj).objects.filter(pk=obj.pk, project=world).exists()
