"""Stories as Markdown or plain text; dialogue trees as JSON, Ink and Yarn Spinner.

JSON schema (``"format": "parlance-dialogue", "version": 1``)::

    {"format": "parlance-dialogue", "version": 1, "title": str, "scene": str,
     "start": node id,
     "characters": [{"name", "persona", "speaking_style", "goals", "knowledge", "relationships"}],
     "nodes": [{"id": str, "speaker": character name or "Player", "text": str,
                "choices": [{"text": str ("" = go on without asking), "to": node id,
                             "condition": "" | "flag" | "not flag"}]}]}

Node ids are the same identifiers the Ink knots and Yarn nodes use: ``n<pk>_<speaker>``, letters,
digits and underscores, starting with a letter. Ink: one knot per line, a sticky choice
`+ {flag} [text] -> knot` per choice (sticky, because trees may loop back), `-> knot` for a line
that goes on without asking, `-> END` where a line leads nowhere, and `VAR flag = false` per flag.
Yarn: one node per line (`title:`, `---`, `Speaker: text`, options
`-> text <<if $flag>>` with an indented `<<jump node>>`, `===`), flags declared in the start node.
"""

import json
import re
import unicodedata

from entertainment.models import DialogueChoice, DialogueNode, DialogueTree, Story
from entertainment.services import story_text


def story_markdown(story: Story) -> str:
    lines = [f"# {_one_line(story.title)}", ""]
    if story.genre:
        lines += [f"*{_one_line(story.genre)}*", ""]
    if story.premise:
        lines += [f"> {_one_line(story.premise)}", ""]
    for _, text in story_text(story=story):
        lines += [text, ""]
    return "\n".join(lines).rstrip() + "\n"


def story_plain(story: Story) -> str:
    parts = [f"{story.title}\n{'=' * len(story.title)}"] + [text for _, text in story_text(story=story)]
    return "\n\n".join(parts).rstrip() + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def node_name(node: DialogueNode) -> str:
    """A valid Ink knot / Yarn node identifier, unique within the tree."""
    speaker = unicodedata.normalize("NFKD", node.speaker_name).encode("ascii", "ignore").decode()
    speaker = re.sub(r"[^A-Za-z0-9]+", "_", speaker).strip("_").lower()[:24] or "line"
    return f"n{node.pk}_{speaker}"


def _tree_parts(tree: DialogueTree):
    nodes = list(tree.nodes.select_related("speaker").order_by("-is_root", "id"))
    choices: dict[int, list[DialogueChoice]] = {}
    for choice in tree.choices.order_by("order", "id"):
        choices.setdefault(choice.from_node_id, []).append(choice)
    names = {n.pk: node_name(n) for n in nodes}
    flags = sorted({c.condition.split()[-1] for cs in choices.values() for c in cs if c.condition})
    return nodes, choices, names, flags


def tree_json(tree: DialogueTree) -> str:
    nodes, choices, names, _ = _tree_parts(tree)
    data = {
        "format": "parlance-dialogue",
        "version": 1,
        "title": tree.title,
        "scene": tree.scene,
        "start": names[nodes[0].pk] if nodes else None,
        "characters": [
            {"name": c.name, "persona": c.persona, "speaking_style": c.speaking_style, "goals": c.goals,
             "knowledge": c.knowledge, "relationships": c.relationships}
            for c in tree.characters.order_by("name")
        ],
        "nodes": [
            {"id": names[n.pk], "speaker": n.speaker_name, "text": n.text,
             "choices": [{"text": c.text, "to": names[c.to_node_id], "condition": c.condition}
                         for c in choices.get(n.pk, [])]}
            for n in nodes
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


_INK_ESCAPE = re.compile(r"(\\|\{|\}|\[|\]|\||#|//|/\*|->|<>|<-)")
_YARN_ESCAPE = re.compile(r"([\\{}\[\]<>#/])")


def ink_escape(text: str) -> str:
    return _INK_ESCAPE.sub(lambda m: "".join("\\" + ch for ch in m.group(0)), _one_line(text))


def yarn_escape(text: str) -> str:
    return _YARN_ESCAPE.sub(r"\\\1", _one_line(text))


def _ink_condition(condition: str) -> str:
    return f"{{{condition}}} " if condition else ""


def tree_ink(tree: DialogueTree) -> str:
    nodes, choices, names, flags = _tree_parts(tree)
    out = [f"// {_one_line(tree.title)} (exported from Parlance)"]
    out += [f"VAR {flag} = false" for flag in flags]
    out += [f"-> {names[nodes[0].pk]}" if nodes else "-> END", ""]
    for node in nodes:
        out.append(f"=== {names[node.pk]} ===")
        out.append(f"{ink_escape(node.speaker_name)}: {ink_escape(node.text)}")
        edges = choices.get(node.pk, [])
        if not edges:
            out.append("-> END")
        elif len(edges) == 1 and not edges[0].text:
            out.append(f"-> {names[edges[0].to_node_id]}")
        else:
            for c in edges:
                out.append(f"+ {_ink_condition(c.condition)}[{ink_escape(c.text)}] -> {names[c.to_node_id]}")
        out.append("")
    return "\n".join(out)


def _yarn_condition(condition: str) -> str:
    if not condition:
        return ""
    negated = condition.startswith("not ")
    return f" <<if {'not ' if negated else ''}${condition.split()[-1]}>>"


def tree_yarn(tree: DialogueTree) -> str:
    nodes, choices, names, flags = _tree_parts(tree)
    out = []
    for i, node in enumerate(nodes):
        out += [f"title: {names[node.pk]}", "---"]
        if i == 0:
            out += [f"<<declare ${flag} = false>>" for flag in flags]
        out.append(f"{yarn_escape(node.speaker_name)}: {yarn_escape(node.text)}")
        edges = choices.get(node.pk, [])
        if len(edges) == 1 and not edges[0].text:
            out.append(f"<<jump {names[edges[0].to_node_id]}>>")
        else:
            for c in edges:
                out.append(f"-> {yarn_escape(c.text)}{_yarn_condition(c.condition)}")
                out.append(f"    <<jump {names[c.to_node_id]}>>")
        out.append("===")
    return "\n".join(out) + "\n"


EXPORTS = {
    "json": (tree_json, "application/json", "json"),
    "ink": (tree_ink, "text/plain", "ink"),
    "yarn": (tree_yarn, "text/plain", "yarn"),
}


def tree_filename(tree: DialogueTree) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", unicodedata.normalize("NFKD", tree.title).encode("ascii", "ignore").decode())
    return slug.strip("-").lower()[:60] or f"tree-{tree.pk}"
