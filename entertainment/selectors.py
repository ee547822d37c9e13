"""Reads for the studio pages. Every lookup is filtered by owner, so another writer's object is a 404."""

from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404

from entertainment.models import (
    Character,
    DialogueChoice,
    DialogueNode,
    DialogueTree,
    GenerationJob,
    LoreEntry,
    Project,
    Story,
    StorySegment,
)


def projects_for(*, user):
    return (Project.objects.filter(owner=user)
            .annotate(n_stories=Count("stories", distinct=True), n_characters=Count("characters", distinct=True),
                      n_lore=Count("lore_entries", distinct=True), n_trees=Count("dialogue_trees", distinct=True)))


def project_get(*, user, pk: int) -> Project:
    return get_object_or_404(Project.objects.select_related("style_job__result_version"), pk=pk, owner=user)


def lore_get(*, user, pk: int) -> LoreEntry:
    return get_object_or_404(LoreEntry.objects.select_related("project", "parent"), pk=pk, project__owner=user)


def character_get(*, user, pk: int) -> Character:
    return get_object_or_404(Character.objects.select_related("project"), pk=pk, project__owner=user)


def story_get(*, user, pk: int) -> Story:
    return get_object_or_404(Story.objects.select_related("project"), pk=pk, project__owner=user)


def segment_get(*, user, pk: int) -> StorySegment:
    return get_object_or_404(StorySegment.objects.select_related("story__project"), pk=pk,
                             story__project__owner=user)


def tree_get(*, user, pk: int) -> DialogueTree:
    return get_object_or_404(DialogueTree.objects.select_related("project"), pk=pk, project__owner=user)


def node_get(*, user, pk: int) -> DialogueNode:
    return get_object_or_404(DialogueNode.objects.select_related("tree__project", "speaker"), pk=pk,
                             tree__project__owner=user)


def choice_get(*, user, pk: int) -> DialogueChoice:
    return get_object_or_404(DialogueChoice.objects.select_related("tree"), pk=pk, tree__project__owner=user)


def job_get(*, user, pk: int) -> GenerationJob:
    return get_object_or_404(GenerationJob.objects.select_related("project", "story", "tree", "character"), pk=pk,
                             owner=user)


def project_overview(*, project: Project) -> dict:
    return {
        "lore": list(project.lore_entries.select_related("parent")),
        "characters": list(project.characters.all()),
        "stories": list(project.stories.annotate(n_segments=Count("segments"))),
        "trees": list(project.dialogue_trees.annotate(n_nodes=Count("nodes"))),
    }


def story_segments(*, story: Story) -> list[StorySegment]:
    """Segments with the shown text, how many alternatives each has and which one is shown (1-based)."""
    return list(story.segments.select_related("active_alternative").annotate(
        n_alternatives=Count("alternatives"),
        shown=Count("alternatives", filter=Q(alternatives__id__lte=F("active_alternative_id"))),
    ).order_by("position"))


def latest_job(*, owner, **target) -> GenerationJob | None:
    return GenerationJob.objects.filter(owner=owner, **target).order_by("-created", "-id").first()


def job_status(job: GenerationJob) -> dict:
    return {
        "id": job.pk, "kind": job.kind, "mode": job.mode, "state": job.state, "active": job.active,
        "text": job.text, "tokens": job.tokens, "tokens_per_second": job.tokens_per_second,
        "candidates": job.candidates, "error": job.error,
        "finished": job.finished.isoformat() if job.finished else None,
    }
