"""Changes to worlds, lore, characters, stories and dialogue trees (generation lives in generation.py)."""

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from entertainment.models import (
    Character,
    DialogueChoice,
    DialogueNode,
    DialogueTree,
    LoreEntry,
    Project,
    SegmentAlternative,
    Story,
    StorySegment,
)

MAX_TEXT = 20_000
CONDITION_RE = re.compile(r"^(not\s+)?[A-Za-z_][A-Za-z0-9_]{0,60}$")


class StudioError(ValidationError):
    """A request the studio refuses, with a message for the writer."""


def clean_text(value: str, what: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = (value or "").replace("\r\n", "\n").strip()
    if required and not value:
        raise StudioError(f"{what} is empty.")
    if len(value) > limit:
        raise StudioError(f"{what} is {len(value)} characters long; the limit is {limit}.")
    return value


# Projects -------------------------------------------------------------------------------------------


def project_create(*, owner, title: str, description: str = "") -> Project:
    title = clean_text(title, "The title", limit=200)
    if Project.objects.filter(owner=owner, title=title).exists():
        raise StudioError(f"You already have a world called “{title}”.")
    return Project.objects.create(owner=owner, title=title, description=clean_text(description, "", required=False))


def project_blocklist_save(*, project: Project, blocklist: str) -> Project:
    phrases = [line.strip() for line in (blocklist or "").splitlines() if line.strip()]
    if len(phrases) > 500:
        raise StudioError("The blocklist holds at most 500 words or phrases.")
    project.blocklist = "\n".join(dict.fromkeys(phrases))
    project.save(update_fields=["blocklist"])
    return project


# Lore -----------------------------------------------------------------------------------------------


def parse_keys(raw: str) -> list[str]:
    """Keys typed as a comma- or line-separated list; blanks and repeats dropped."""
    keys = [k.strip() for k in re.split(r"[,\n]", raw or "") if k.strip()]
    return list(dict.fromkeys(keys))


def lore_entry_save(*, project: Project, entry: LoreEntry | None = None, **fields) -> LoreEntry:
    """Create or update a lore entry; `keys` may be a list or the typed text."""
    entry = entry or LoreEntry(project=project)
    keys = fields.pop("keys", entry.keys)
    entry.keys = parse_keys(keys) if isinstance(keys, str) else list(keys)
    for name, value in fields.items():
        setattr(entry, name, value)
    entry.title = clean_text(entry.title, "The title", limit=200)
    entry.text = clean_text(entry.text, "The entry's text", required=False)
    if entry.parent_id:
        if entry.parent.project_id != project.pk:
            raise StudioError("The parent entry belongs to another world.")
        ancestor = entry.parent
        while ancestor is not None:
            if entry.pk and ancestor.pk == entry.pk:
                raise StudioError("An entry cannot sit under itself.")
            ancestor = ancestor.parent
    if entry.pk is None and not fields.get("insertion_order"):
        entry.insertion_order = (project.lore_entries.aggregate(m=Max("insertion_order"))["m"] or 0) + 1
    try:
        with transaction.atomic():
            entry.save()
    except IntegrityError as exc:
        raise StudioError(f"This world already has a lore entry called “{entry.title}”.") from exc
    return entry


# Characters -----------------------------------------------------------------------------------------


def character_save(*, project: Project, character: Character | None = None, **fields) -> Character:
    character = character or Character(project=project)
    for name, value in fields.items():
        setattr(character, name, clean_text(value, name, required=False, limit=5000))
    character.name = clean_text(character.name, "The name", limit=100)
    try:
        with transaction.atomic():
            character.save()
    except IntegrityError as exc:
        raise StudioError(f"This world already has a character called “{character.name}”.") from exc
    return character


def lore_entry_delete(*, entry: LoreEntry) -> None:
    """Delete a lore entry and the entries under it (the parent foreign key cascades)."""
    entry.delete()


def character_delete(*, character: Character) -> None:
    if DialogueNode.objects.filter(speaker=character).exists():
        raise StudioError(f"{character.name} speaks lines in a dialogue tree; delete or reassign those lines first.")
    character.delete()


# Stories --------------------------------------------------------------------------------------------


def story_save(*, project: Project, story: Story | None = None, **fields) -> Story:
    story = story or Story(project=project)
    for name, value in fields.items():
        setattr(story, name, clean_text(value, name, required=False))
    story.title = clean_text(story.title, "The title", limit=200)
    story.genre = story.genre[:100]
    story.save()
    return story


@transaction.atomic
def segment_append(*, story: Story, text: str, source: str = SegmentAlternative.Source.TYPED,
                   job=None) -> StorySegment:
    """A new last segment holding `text` as its only alternative."""
    Story.objects.select_for_update().filter(pk=story.pk).first()
    position = (story.segments.aggregate(m=Max("position"))["m"] or 0) + 1
    segment = StorySegment.objects.create(story=story, position=position)
    alternative = SegmentAlternative.objects.create(segment=segment, text=clean_text(text, "The text"), source=source,
                                                    job=job)
    segment.active_alternative = alternative
    segment.save(update_fields=["active_alternative"])
    story.save(update_fields=["updated"])
    return segment


@transaction.atomic
def alternative_add(*, segment: StorySegment, text: str, source: str, job=None) -> SegmentAlternative:
    """Another version of a segment, made the one shown."""
    alternative = SegmentAlternative.objects.create(segment=segment, text=clean_text(text, "The text"), source=source,
                                                    job=job)
    segment.active_alternative = alternative
    segment.save(update_fields=["active_alternative"])
    segment.story.save(update_fields=["updated"])
    return alternative


def segment_swipe(*, segment: StorySegment, step: int) -> SegmentAlternative:
    """Show the previous (-1) or next (+1) alternative; stays put at either end."""
    ids = list(segment.alternatives.order_by("id").values_list("pk", flat=True))
    if not ids:
        raise StudioError("This segment has no alternatives.")
    at = ids.index(segment.active_alternative_id) if segment.active_alternative_id in ids else len(ids) - 1
    target = ids[min(max(at + (1 if step > 0 else -1), 0), len(ids) - 1)]
    segment.active_alternative_id = target
    segment.save(update_fields=["active_alternative"])
    return segment.alternatives.get(pk=target)


def segment_edit(*, segment: StorySegment, text: str) -> SegmentAlternative:
    """A hand edit is kept as a new 'edited' alternative, so the generated text stays one swipe away."""
    return alternative_add(segment=segment, text=text, source=SegmentAlternative.Source.EDITED)


def story_undo(*, story: Story) -> bool:
    """Remove the last segment (with its alternatives); False when there is none."""
    last = story.segments.order_by("-position").first()
    if last is None:
        return False
    last.delete()
    return True


def story_text(*, story: Story) -> list[tuple[int, str]]:
    segments = story.segments.select_related("active_alternative").order_by("position")
    return [(s.position, s.text) for s in segments]


# Dialogue trees -------------------------------------------------------------------------------------


def tree_save(*, project: Project, tree: DialogueTree | None = None, title: str, scene: str = "",
              characters=()) -> DialogueTree:
    tree = tree or DialogueTree(project=project)
    tree.title = clean_text(title, "The title", limit=200)
    tree.scene = clean_text(scene, "The scene", required=False)
    chars = list(characters)
    if any(c.project_id != project.pk for c in chars):
        raise StudioError("A character from another world cannot join this tree.")
    with transaction.atomic():
        tree.save()
        tree.characters.set(chars)
    return tree


def _check_speaker(tree: DialogueTree, speaker: Character | None) -> None:
    if speaker is not None and speaker.project_id != tree.project_id:
        raise StudioError("That character belongs to another world.")


def _check_condition(condition: str) -> str:
    condition = " ".join((condition or "").split())
    if condition and not CONDITION_RE.match(condition):
        raise StudioError("A condition is a flag name (letters, digits, underscores), optionally after 'not', "
                          "e.g. has_key or not met_before.")
    return condition


@transaction.atomic
def node_add(*, tree: DialogueTree, speaker: Character | None, text: str, parent: DialogueNode | None = None,
             choice_text: str = "", condition: str = "") -> DialogueNode:
    """A line in the tree; the first line becomes the root, later ones hang from `parent` by a choice."""
    _check_speaker(tree, speaker)
    DialogueTree.objects.select_for_update().filter(pk=tree.pk).first()
    has_root = tree.nodes.filter(is_root=True).exists()
    if has_root and parent is None:
        raise StudioError("Say which line this one follows.")
    node = DialogueNode.objects.create(tree=tree, speaker=speaker, text=clean_text(text, "The line", limit=2000),
                                       is_root=not has_root)
    if parent is not None:
        choice_add(tree=tree, from_node=parent, to_node=node, text=choice_text, condition=condition)
    return node


@transaction.atomic
def choice_add(*, tree: DialogueTree, from_node: DialogueNode, to_node: DialogueNode, text: str = "",
               condition: str = "") -> DialogueChoice:
    """An edge. An empty text means 'go on without asking', which only works as a line's only way on."""
    if from_node.tree_id != tree.pk or to_node.tree_id != tree.pk:
        raise StudioError("Both lines must be in this tree.")
    text = clean_text(text, "The choice text", required=False, limit=500).replace("\n", " ")
    condition = _check_condition(condition)
    existing = list(from_node.choices_out.all())
    if any(c.to_node_id == to_node.pk for c in existing):
        raise StudioError("Those two lines are linked already.")
    if existing and (not text or any(not c.text for c in existing)):
        raise StudioError("A line that goes on without a choice has one way on only; give every choice from "
                          "this line a text.")
    if not text and condition:
        raise StudioError("A condition needs a choice text to hang on.")
    order = max((c.order for c in existing), default=0) + 1
    return DialogueChoice.objects.create(tree=tree, from_node=from_node, to_node=to_node, text=text,
                                         condition=condition, order=order)


def node_edit(*, node: DialogueNode, text: str) -> DialogueNode:
    node.text = clean_text(text, "The line", limit=2000)
    node.save(update_fields=["text"])
    return node


@transaction.atomic
def node_delete(*, node: DialogueNode) -> None:
    """Delete a line and its links; if it was the root, the oldest remaining line becomes the root."""
    tree, was_root = node.tree, node.is_root
    node.delete()
    if was_root:
        successor = tree.nodes.order_by("id").first()
        if successor is not None:
            DialogueNode.objects.filter(pk=successor.pk).update(is_root=True)


def choice_delete(*, choice: DialogueChoice) -> None:
    choice.delete()


@dataclass
class TreeItem:
    node: DialogueNode
    via: DialogueChoice | None
    children: list
    repeat: bool = False  # already shown above (a loop or a merge): not expanded again


def tree_outline(*, tree: DialogueTree) -> tuple[list[TreeItem], list[DialogueNode]]:
    """The tree from its root as nested items (each node expanded once), and the lines not reachable."""
    nodes = {n.pk: n for n in tree.nodes.select_related("speaker")}
    out: dict[int, list[DialogueChoice]] = {}
    for choice in tree.choices.all():
        out.setdefault(choice.from_node_id, []).append(choice)
    seen: set[int] = set()

    def expand(node, via):
        if node.pk in seen:
            return TreeItem(node, via, [], repeat=True)
        seen.add(node.pk)
        kids = [expand(nodes[c.to_node_id], c) for c in sorted(out.get(node.pk, []), key=lambda c: (c.order, c.pk))]
        return TreeItem(node, via, kids)

    roots = [n for n in nodes.values() if n.is_root]
    items = [expand(roots[0], None)] if roots else []
    return items, [n for pk, n in nodes.items() if pk not in seen]
