"""The demo world a fresh install starts with (entertainment/fixtures/demo_world.json, written for Parlance).

Lore entries that trigger each other, three characters with distinct voices, a started story with an
alternative to swipe to, and a small dialogue tree with a conditional choice. No generation needed.
"""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from entertainment import services
from entertainment.models import Project, SegmentAlternative

DEMO_WORLD = Path(__file__).resolve().parent / "fixtures" / "demo_world.json"


class DemoUserMissing(LookupError):
    pass


def _lore(project, entries, parent=None):
    for entry in entries:
        saved = services.lore_entry_save(
            project=project, title=entry["title"], keys=entry.get("keys", []), text=entry.get("text", ""),
            priority=entry.get("priority", 0), enabled=entry.get("enabled", True),
            can_trigger_others=entry.get("cascade", False), parent=parent)
        _lore(project, entry.get("children", []), parent=saved)


@transaction.atomic
def demo_world_load(*, username: str = "writer", say=print) -> Project:
    """Create the demo world for `username` unless it is there already (idempotent)."""
    owner = get_user_model().objects.filter(username=username).first()
    if owner is None:
        raise DemoUserMissing(f"There is no user {username!r}; run `python manage.py demo_setup` first.")
    data = json.loads(DEMO_WORLD.read_text(encoding="utf-8"))
    existing = Project.objects.filter(owner=owner, title=data["title"]).first()
    if existing is not None:
        say(f"entertainment: the demo world “{existing.title}” is there already")
        return existing
    project = services.project_create(owner=owner, title=data["title"], description=data["description"])
    services.project_blocklist_save(project=project, blocklist="\n".join(data["blocklist"]))
    _lore(project, data["lore"])
    characters = {c["name"]: services.character_save(project=project, **c) for c in data["characters"]}

    s = data["story"]
    story = services.story_save(project=project, title=s["title"], genre=s["genre"], premise=s["premise"],
                                memory=s["memory"], authors_note=s["authors_note"])
    segments = [services.segment_append(story=story, text=text) for text in s["segments"]]
    for index, texts in s.get("alternatives", {}).items():
        for text in texts:
            services.alternative_add(segment=segments[int(index)], text=text, source=SegmentAlternative.Source.TYPED)

    t = data["tree"]
    tree = services.tree_save(project=project, title=t["title"], scene=t["scene"],
                              characters=[characters[name] for name in t["characters"]])
    nodes = {}
    for node in t["nodes"]:
        parent_edge = next((c for c in t["choices"] if c["to"] == node["id"] and c["from"] in nodes), None)
        nodes[node["id"]] = services.node_add(
            tree=tree, speaker=characters[node["speaker"]] if node["speaker"] else None, text=node["text"],
            parent=nodes[parent_edge["from"]] if parent_edge else None,
            choice_text=parent_edge["text"] if parent_edge else "",
            condition=parent_edge.get("condition", "") if parent_edge else "")
    linked = {(c.from_node_id, c.to_node_id) for c in tree.choices.all()}
    for choice in t["choices"]:
        if (nodes[choice["from"]].pk, nodes[choice["to"]].pk) not in linked:
            services.choice_add(tree=tree, from_node=nodes[choice["from"]], to_node=nodes[choice["to"]],
                                text=choice["text"], condition=choice.get("condition", ""))
    say(f"entertainment: demo world “{project.title}” for {username}: {project.lore_entries.count()} lore entries, "
        f"{len(characters)} characters, a story of {len(segments)} segments, a tree of {len(nodes)} lines")
    return project
