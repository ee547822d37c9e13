"""Exports parsed back: the JSON schema, Ink and Yarn Spinner reproduce the tree's structure and texts."""

import json
import re

import pytest

from entertainment import exports, services

pytestmark = pytest.mark.django_db

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def split_line(line: str) -> tuple[str, str]:
    speaker, text = line.split(": ", 1)
    return unescape(speaker), unescape(text)


def parse_ink(source: str) -> dict:
    """The subset of Ink we write: VARs, a start divert, knots with one line, choices, diverts, END."""
    nodes, start, flags, current = {}, None, [], None
    for line in source.splitlines():
        if not line or line.startswith("//"):
            continue
        if m := re.match(r"^VAR (\w+) = false$", line):
            flags.append(m.group(1))
        elif m := re.match(r"^=== (\w+) ===$", line):
            current = nodes.setdefault(m.group(1), {"choices": []})
        elif current is None and (m := re.match(r"^-> (\w+)$", line)):
            start = m.group(1)
        elif m := re.match(r"^\+ (?:\{((?:not )?\w+)\} )?\[((?:[^\]\\]|\\.)*)\] -> (\w+)$", line):
            current["choices"].append({"text": unescape(m.group(2)), "to": m.group(3), "condition": m.group(1) or ""})
        elif m := re.match(r"^-> (\w+)$", line):
            if m.group(1) != "END":
                current["choices"].append({"text": "", "to": m.group(1), "condition": ""})
        else:
            assert "speaker" not in current, f"unexpected line {line!r}"
            current["speaker"], current["text"] = split_line(line)
    return {"start": start, "flags": flags, "nodes": nodes}


def parse_yarn(source: str) -> dict:
    """The subset of Yarn Spinner we write: nodes with a title, a line, options with a jump, jumps."""
    nodes, order, flags = {}, [], []
    for block in source.split("===\n"):
        if not block.strip():
            continue
        header, body = block.split("---\n", 1)
        title = re.match(r"^title: (\w+)$", header.strip()).group(1)
        order.append(title)
        node = nodes[title] = {"choices": []}
        pending = None
        for line in body.splitlines():
            if m := re.match(r"^<<declare \$(\w+) = false>>$", line):
                flags.append(m.group(1))
            elif m := re.match(r"^-> (.*?)(?: <<if (not )?\$(\w+)>>)?$", line):
                pending = {"text": unescape(m.group(1)), "condition": (m.group(2) or "") + (m.group(3) or "")}
            elif m := re.match(r"^    <<jump (\w+)>>$", line):
                node["choices"].append({**pending, "to": m.group(1)})
                pending = None
            elif m := re.match(r"^<<jump (\w+)>>$", line):
                node["choices"].append({"text": "", "to": m.group(1), "condition": ""})
            else:
                node["speaker"], node["text"] = split_line(line)
    return {"start": order[0], "flags": flags, "nodes": nodes}


@pytest.fixture
def branching(tree, maren):
    root = services.node_add(tree=tree, speaker=maren, text='Who knocks? {Speak} [now] # or -> leave // "quietly" \\')
    friend = services.node_add(tree=tree, speaker=None, text="A friend.", parent=root, choice_text="Say [friend]")
    thief = services.node_add(tree=tree, speaker=None, text="Open up!", parent=root, choice_text="Demand <<entry>>",
                              condition="not polite")
    welcome = services.node_add(tree=tree, speaker=maren, text="Come in; mind the lamp.", parent=friend)
    services.choice_add(tree=tree, from_node=thief, to_node=welcome, text="Show the key", condition="has_key")
    services.choice_add(tree=tree, from_node=welcome, to_node=root, text="Knock again")
    return tree


def expected_structure(tree):
    names = {n.pk: exports.node_name(n) for n in tree.nodes.all()}
    nodes = {}
    for node in tree.nodes.select_related("speaker"):
        nodes[names[node.pk]] = {
            "speaker": node.speaker_name, "text": node.text,
            "choices": [{"text": c.text, "to": names[c.to_node_id], "condition": c.condition}
                        for c in node.choices_out.order_by("order", "id")],
        }
    root = names[tree.nodes.get(is_root=True).pk]
    return root, nodes


def test_node_names_are_identifiers(branching):
    for node in branching.nodes.all():
        assert IDENT.match(exports.node_name(node))


def test_json_round_trip(branching):
    data = json.loads(exports.tree_json(branching))
    root, nodes = expected_structure(branching)
    assert data["format"] == "parlance-dialogue" and data["version"] == 1 and data["start"] == root
    assert data["title"] == "At the door" and [c["name"] for c in data["characters"]] == ["Maren"]
    assert {n["id"]: {k: n[k] for k in ("speaker", "text", "choices")} for n in data["nodes"]} == nodes


def test_ink_round_trip(branching):
    source = exports.tree_ink(branching)
    parsed = parse_ink(source)
    root, nodes = expected_structure(branching)
    assert parsed["start"] == root
    assert parsed["flags"] == ["has_key", "polite"]
    assert parsed["nodes"] == nodes
    # The special characters of the first line are escaped, so Ink reads them as text.
    assert r"\{Speak\} \[now\] \# or \-\> leave \/\/ " in source


def test_ink_diverts_for_a_line_that_goes_on_alone_and_ends_a_leaf(branching, maren):
    thief = branching.nodes.get(text="Open up!")
    leaf = services.node_add(tree=branching, speaker=maren, text="Then go.", parent=thief, choice_text="Refuse")
    knots = {block.split(" ===")[0]: block for block in exports.tree_ink(branching).split("=== ")[1:]}
    friend = branching.nodes.get(text="A friend.")
    welcome = branching.nodes.get(text="Come in; mind the lamp.")
    assert knots[exports.node_name(friend)].strip().splitlines()[-1] == f"-> {exports.node_name(welcome)}"
    assert knots[exports.node_name(leaf)].strip().splitlines()[-1] == "-> END"
    empty = services.tree_save(project=branching.project, title="Empty")
    assert exports.tree_ink(empty).splitlines()[1] == "-> END"


def test_yarn_round_trip(branching):
    parsed = parse_yarn(exports.tree_yarn(branching))
    root, nodes = expected_structure(branching)
    assert parsed["start"] == root
    assert parsed["flags"] == ["has_key", "polite"]
    assert parsed["nodes"] == nodes


def test_story_exports(story):
    services.segment_append(story=story, text="The lamp flickered.")
    services.segment_append(story=story, text="Maren climbed <b>up</b>.")
    assert exports.story_markdown(story) == ("# The Dark Lamp\n\n*mystery*\n\n> The lamp goes dark on the stormiest "
                                             "night.\n\nThe lamp flickered.\n\nMaren climbed <b>up</b>.\n")
    assert exports.story_plain(story) == ("The Dark Lamp\n=============\n\nThe lamp flickered.\n\n"
                                          "Maren climbed <b>up</b>.\n")
