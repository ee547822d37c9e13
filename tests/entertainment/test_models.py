"""Database constraints hold even when the services are bypassed."""

import pytest
from django.db import IntegrityError, transaction

from entertainment.models import (
    Character,
    DialogueChoice,
    DialogueNode,
    GenerationJob,
    LoreEntry,
    Project,
    SegmentAlternative,
    StorySegment,
)

pytestmark = pytest.mark.django_db


def refused(make):
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


def test_titles_and_names_are_unique_and_not_empty(writer, world, maren):
    refused(lambda: Project.objects.create(owner=writer, title="Gull Rock"))
    refused(lambda: Project.objects.create(owner=writer, title=""))
    refused(lambda: LoreEntry.objects.create(project=world, title="Lighthouse"))
    refused(lambda: Character.objects.create(project=world, name="Maren"))
    refused(lambda: Character.objects.create(project=world, name=""))


def test_a_lore_entry_cannot_be_its_own_parent(world):
    entry = world.lore_entries.get(title="Lighthouse")
    entry.parent_id = entry.pk
    refused(lambda: entry.save())


def test_segment_positions_are_unique_and_sources_valid(story):
    segment = StorySegment.objects.create(story=story, position=1)
    refused(lambda: StorySegment.objects.create(story=story, position=1))
    refused(lambda: SegmentAlternative.objects.create(segment=segment, text="x", source="dreamed"))


def test_one_root_per_tree_and_no_empty_lines_or_duplicate_edges(tree, maren):
    root = DialogueNode.objects.create(tree=tree, speaker=maren, text="Who knocks?", is_root=True)
    refused(lambda: DialogueNode.objects.create(tree=tree, text="Me.", is_root=True))
    refused(lambda: DialogueNode.objects.create(tree=tree, text=""))
    reply = DialogueNode.objects.create(tree=tree, text="A traveller.")
    DialogueChoice.objects.create(tree=tree, from_node=root, to_node=reply, text="Answer")
    refused(lambda: DialogueChoice.objects.create(tree=tree, from_node=root, to_node=reply, text="Again"))


def test_a_job_targets_what_its_kind_says_and_one_runs_at_a_time(writer, world, story, tree):
    refused(lambda: GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue"))
    refused(lambda: GenerationJob.objects.create(owner=writer, project=world, kind="dialogue", mode="candidates",
                                                 story=story))
    refused(lambda: GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue",
                                                 story=story, state="lost"))
    GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue", story=story)
    refused(lambda: GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue",
                                                 story=story, state="running"))
    # Finished jobs do not count.
    GenerationJob.objects.create(owner=writer, project=world, kind="story", mode="continue", story=story,
                                 state="done")
