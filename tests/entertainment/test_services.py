"""Worlds, lore, stories (swipe, edit, undo) and dialogue tree editing."""

import pytest

from entertainment import generation, services
from entertainment.models import DialogueNode, GenerationJob, SegmentAlternative

pytestmark = pytest.mark.django_db


def test_lore_keys_are_parsed_and_insertion_order_assigned(world):
    entry = services.lore_entry_save(project=world, title="Harbour", keys="harbour, Harbour master,\n quay, quay",
                                     text="Boats.")
    assert entry.keys == ["harbour", "Harbour master", "quay"]
    assert entry.insertion_order == 3
    with pytest.raises(services.StudioError, match="already has a lore entry called “Harbour”"):
        services.lore_entry_save(project=world, title="Harbour", keys="x")


def test_a_lore_entry_cannot_sit_under_its_own_child(world):
    parent = world.lore_entries.get(title="Lighthouse")
    child = services.lore_entry_save(project=world, title="Lamp", keys="lamp", parent=parent)
    with pytest.raises(services.StudioError, match="cannot sit under itself"):
        services.lore_entry_save(project=world, entry=parent, parent=child)


def test_entries_under_a_disabled_parent_count_as_disabled(world):
    parent = world.lore_entries.get(title="Lighthouse")
    services.lore_entry_save(project=world, title="Lamp", keys="lamp", parent=parent, text="The lamp.")
    services.lore_entry_save(project=world, entry=parent, enabled=False)
    enabled = {entry.title: entry.enabled for entry in generation.lore_for(world)}
    assert enabled == {"Lighthouse": False, "Gull Rock": True, "Lamp": False}


def test_swipe_edit_and_undo(story):
    first = services.segment_append(story=story, text="The lamp flickered.")
    alt = services.alternative_add(segment=first, text="The lamp died.", source=SegmentAlternative.Source.GENERATED)
    first.refresh_from_db()
    assert first.active_alternative == alt
    assert services.segment_swipe(segment=first, step=-1).text == "The lamp flickered."
    assert services.segment_swipe(segment=first, step=-1).text == "The lamp flickered."  # stays at the start
    assert services.segment_swipe(segment=first, step=+1).text == "The lamp died."
    edited = services.segment_edit(segment=first, text="The lamp died at midnight.")
    assert edited.source == "edited" and first.alternatives.count() == 3
    services.segment_append(story=story, text="Maren climbed the stairs.")
    assert [t for _, t in services.story_text(story=story)] == ["The lamp died at midnight.",
                                                                "Maren climbed the stairs."]
    assert services.story_undo(story=story) is True
    assert [t for _, t in services.story_text(story=story)] == ["The lamp died at midnight."]
    with pytest.raises(services.StudioError, match="The text is empty"):
        services.segment_append(story=story, text="   ")


def test_tree_editing_adds_edits_links_and_deletes(tree, maren):
    root = services.node_add(tree=tree, speaker=maren, text="Who knocks at this hour?")
    assert root.is_root
    with pytest.raises(services.StudioError, match="Say which line this one follows"):
        services.node_add(tree=tree, speaker=None, text="Me.")
    player = services.node_add(tree=tree, speaker=None, text="A traveller.", parent=root, choice_text="Answer")
    rude = services.node_add(tree=tree, speaker=None, text="Open up!", parent=root, choice_text="Shout",
                             condition="not polite")
    reply = services.node_add(tree=tree, speaker=maren, text="Come in, then.", parent=player)
    with pytest.raises(services.StudioError, match="give every choice from this line a text"):
        services.choice_add(tree=tree, from_node=player, to_node=rude, text="Or shout")
    with pytest.raises(services.StudioError, match="A condition is a flag name"):
        services.choice_add(tree=tree, from_node=rude, to_node=reply, text="x", condition="1 == 1")
    services.choice_add(tree=tree, from_node=rude, to_node=reply, text="Wait", condition="has_key")
    services.node_edit(node=reply, text="Come in, and shut the door.")
    outline, orphans = services.tree_outline(tree=tree)
    assert orphans == []
    top = outline[0]
    assert top.node == root
    assert [(c.via.text, c.node.text) for c in top.children] == [("Answer", "A traveller."), ("Shout", "Open up!")]
    assert top.children[0].children[0].node.text == "Come in, and shut the door."
    assert top.children[1].children[0].repeat is True  # reached twice, expanded once

    services.node_delete(node=player)
    outline, orphans = services.tree_outline(tree=tree)
    assert [c.node.text for c in outline[0].children] == ["Open up!"]
    services.node_delete(node=root)
    assert DialogueNode.objects.get(pk=rude.pk).is_root  # the oldest remaining line is the new start


def test_a_character_who_speaks_in_a_tree_cannot_be_deleted(tree, maren):
    services.node_add(tree=tree, speaker=maren, text="Hello.")
    with pytest.raises(services.StudioError, match="speaks lines in a dialogue tree"):
        services.character_delete(character=maren)


def test_accepting_a_candidate_adds_player_line_and_reply_once(writer, tree, maren):
    root = services.node_add(tree=tree, speaker=maren, text="Who knocks?")
    job = generation.dialogue_generate(owner=writer, tree=tree, character=maren, player_line="A friend.",
                                       parent=root, count=2, params={"seed": 1})
    GenerationJob.objects.filter(pk=job.pk).update(state="done", candidates=["Friends knock softer.", "Enter."])
    job.refresh_from_db()
    node = generation.candidate_accept(job=job, index=0)
    assert node.text == "Friends knock softer." and node.speaker == maren
    player = node.choices_in.get().from_node
    assert player.speaker is None and player.text == "A friend."
    assert player.choices_in.get().from_node == root and player.choices_in.get().text == "A friend."
    with pytest.raises(generation.GenerationRefused, match="in the tree already"):
        generation.candidate_accept(job=job, index=1)


def test_sampling_is_bounded_and_presets_apply():
    params = generation.sampling_clean({"preset": "precise", "max_new_tokens": 5000, "temperature": 9,
                                        "seed": 4, "stop": ["\\n\\n", ""]})
    assert params == {"preset": "precise", "temperature": 2.0, "top_p": 0.85, "top_k": 20, "repetition_penalty": 1.15,
                      "max_new_tokens": 400, "seed": 4, "seed_random": False, "stop": ["\n\n"]}
    defaults = generation.sampling_clean({})
    assert defaults["max_new_tokens"] == 120 and defaults["seed_random"] is True
    assert 0 <= defaults["seed"] < 2**31


def test_blocklist_masks_whole_words_in_any_case():
    assert generation.mask("Damn the dark, DAMN it; damnation.", ["damn", "the dark"]) == \
        "**** ********, **** it; damnation."


def test_a_reply_is_the_first_line_without_the_speakers_name():
    assert generation._clean_reply("\n Maren: Who goes there?\nMaren: Speak up.", "Maren") == "Who goes there?"
    assert generation._clean_reply(" Aye.\nPlayer: what?", "Maren") == "Aye."
    assert generation._clean_reply("\n\n", "Maren") == ""
