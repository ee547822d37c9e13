"""The demo world loads once for the demo writer, with lore that cascades and a tree that exports."""

import pytest
from django.core.management import CommandError, call_command

from core.roles import Role
from entertainment import exports, generation
from entertainment.context import build_context
from entertainment.models import Project

pytestmark = pytest.mark.django_db


def test_without_the_demo_writer_the_command_says_what_to_do():
    with pytest.raises(CommandError, match="run `python manage.py demo_setup` first"):
        call_command("entertainment_setup", "--demo")


def test_the_demo_world_loads_once(make_user, capsys):
    writer = make_user(Role.WRITER, username="writer")
    call_command("entertainment_setup", "--demo")
    call_command("entertainment_setup", "--demo")
    assert "is there already" in capsys.readouterr().out
    project = Project.objects.get(owner=writer)
    assert project.characters.count() == 3
    story = project.stories.get()
    assert story.segments.count() == 3 and story.segments.get(position=3).alternatives.count() == 2
    tree = project.dialogue_trees.get()
    assert tree.nodes.count() == 7 and tree.choices.count() == 7
    assert tree.choices.get(condition="knows_signal").text == "Show the lantern signal"
    assert "VAR knows_signal = false" in exports.tree_ink(tree)

    # "Maren" triggers her entry, whose text cascades to the lighthouse and the harbour master; the retired
    # rumour is disabled; entries under "Places" and "People" stay enabled.
    built = build_context(count_tokens=lambda texts: [len(t.split()) for t in texts], context_window=2048,
                          max_new_tokens=200, recent_text="Maren looked out to sea.",
                          lore=generation.lore_for(project))
    lore = {p.name: (p.included, p.reason, p.depth) for p in built.parts if p.kind == "lore"}
    assert lore["Maren Holt"] == (True, "", 0)
    assert lore["Gull Rock Light"] == (True, "", 1)
    assert lore["Harbour master Tobias Venn"] == (True, "", 1)
    assert lore["Saltglass"] == (True, "", 2)
    assert lore["Old rumour (retired)"] == (False, "disabled", 2)
