"""The context builder with exact token counts (one token per whitespace-separated word)."""

import pytest

from entertainment.context import ContextError, Lore, activate_lore, build_context, insert_authors_note, key_pattern


def words(texts):
    return [len(t.split()) for t in texts]


def build(**kwargs):
    defaults = dict(count_tokens=words, context_window=1000, max_new_tokens=100, recent_text="")
    return build_context(**{**defaults, **kwargs})


def lore_parts(built):
    return [(p.name, p.included, p.reason, p.depth) for p in built.parts if p.kind == "lore"]


LIGHTHOUSE = Lore(1, "Lighthouse", ["lighthouse"], "The lighthouse stands on Gull Rock.", can_trigger_others=True)
GULL_ROCK = Lore(2, "Gull Rock", ["Gull Rock"], "Gull Rock is home to the keeper Maren.", can_trigger_others=True)
MAREN = Lore(3, "Maren", ["Maren"], "Maren keeps the lamp and distrusts the harbour master.",
             can_trigger_others=True)
HARBOUR = Lore(4, "Harbour master", ["harbour master"], "The harbour master is Tobias Venn.")


def test_keys_match_whole_words_in_any_case_and_phrases_across_spaces():
    assert key_pattern("lamp").search("The LAMP went out")
    assert not key_pattern("lamp").search("the lamplighter")
    assert not key_pattern("lamp").search("a clamp")
    assert key_pattern("harbour master").search("the Harbour\nMaster said")
    assert key_pattern("  ") is None


def test_cascade_follows_entries_that_may_trigger_others_up_to_the_limit():
    found = activate_lore([LIGHTHOUSE, GULL_ROCK, MAREN, HARBOUR], "We sailed to the lighthouse.",
                          recursion_limit=2)
    assert [(a.entry.title, a.depth) for a in found] == [
        ("Lighthouse", 0), ("Gull Rock", 1), ("Maren", 2), ("Harbour master", 3)]
    assert found[1].trigger == "“Gull Rock” in cascade from Lighthouse"


def test_entries_beyond_the_recursion_limit_are_reported_not_silently_dropped():
    built = build(recent_text="We sailed to the lighthouse.", lore=[LIGHTHOUSE, GULL_ROCK, MAREN, HARBOUR],
                  recursion_limit=1)
    assert lore_parts(built) == [
        ("Lighthouse", True, "", 0), ("Gull Rock", True, "", 1), ("Maren", False, "recursion limit", 2)]
    assert "Gull Rock is home" in built.prompt and "distrusts" not in built.prompt
    # Harbour master would come only through Maren, who was never activated: it is not triggered at all.


def test_an_entry_that_may_not_trigger_others_does_not_cascade():
    quiet = Lore(1, "Lighthouse", ["lighthouse"], "The lighthouse stands on Gull Rock.", can_trigger_others=False)
    built = build(recent_text="the lighthouse", lore=[quiet, GULL_ROCK])
    assert lore_parts(built) == [("Lighthouse", True, "", 0)]


def test_disabled_entries_are_reported_and_do_not_cascade():
    off = Lore(1, "Lighthouse", ["lighthouse"], "The lighthouse stands on Gull Rock.", enabled=False,
               can_trigger_others=True)
    built = build(recent_text="the lighthouse", lore=[off, GULL_ROCK])
    assert lore_parts(built) == [("Lighthouse", False, "disabled", 0)]
    assert "Gull Rock" not in built.prompt


def test_order_is_priority_then_insertion_order_and_the_budget_reports_what_did_not_fit():
    entries = [
        Lore(10, "Low", ["ship"], "one two three", priority=0, insertion_order=1),
        Lore(11, "High late", ["ship"], "a b c d", priority=5, insertion_order=9),
        Lore(12, "High early", ["ship"], "w x y z q", priority=5, insertion_order=2),
        Lore(13, "Mid big", ["ship"], "1 2 3 4 5 6", priority=3, insertion_order=0),
    ]
    built = build(recent_text="the ship came in", lore=entries, lore_budget=12)
    assert lore_parts(built) == [
        ("High early", True, "", 0),
        ("High late", True, "", 0),
        ("Mid big", False, "over budget (6 tokens; 3 of 12 left)", 0),
        ("Low", True, "", 0),
    ]
    assert built.prompt == "w x y z q\n\na b c d\n\none two three\n\nthe ship came in"


def test_full_prompt_order_authors_note_position_and_trimming_from_the_front():
    recent = "\n".join(f"line{i} x" for i in range(1, 9))  # 8 lines, 16 words
    built = build(context_window=30, max_new_tokens=5, recent_text=recent, memory="mem ory",
                  persona="I am Maren", authors_note="be terse", lore=[Lore(1, "L", ["line8"], "lore text")],
                  note_depth=2)
    # window 30 - 5 = 25 available; persona 3 + memory 2 + lore 2 + note 4 = 11; 14 left for recent text.
    assert built.available_tokens == 25
    assert built.prompt == ("I am Maren\n\nmem ory\n\nlore text\n\n"
                            "line2 x\nline3 x\nline4 x\nline5 x\nline6 x\n[Author's note: be terse]\nline7 x\nline8 x")
    assert built.prompt_tokens == 25
    assert [(p.kind, p.tokens, p.included, p.reason) for p in built.parts] == [
        ("persona", 3, True, ""), ("memory", 2, True, ""), ("lore", 2, True, ""),
        ("authors_note", 4, True, ""), ("recent_text", 14, True, "trimmed: 2 words dropped from the front"),
    ]


def test_the_tail_is_kept_and_scanned_for_keys():
    built = build(recent_text="Player: hello", tail="Maren:", lore=[MAREN])
    assert built.prompt == "Maren keeps the lamp and distrusts the harbour master.\n\nPlayer: hello\nMaren:"


def test_lore_budget_never_exceeds_what_the_window_leaves():
    built = build(context_window=12, max_new_tokens=2, memory="a b c d e f", recent_text="ship",
                  lore=[Lore(1, "Big", ["ship"], "1 2 3 4 5"), Lore(2, "Small", ["ship"], "1 2 3", priority=-1)])
    # 10 available, memory 6: 4 left for lore although the lore budget is 512.
    assert lore_parts(built) == [("Big", False, "over budget (5 tokens; 4 of 4 left)", 0), ("Small", True, "", 0)]
    assert built.prompt == "a b c d e f\n\n1 2 3\n\nship" and built.prompt_tokens == 10
    squeezed = build(context_window=12, max_new_tokens=2, memory="a b c d e f", recent_text="a ship",
                     lore=[Lore(2, "Small", ["ship"], "1 2 3")])
    assert squeezed.prompt == "a b c d e f\n\n1 2 3\n\nship"
    assert (squeezed.parts[-1].tokens, squeezed.parts[-1].reason) == (1, "trimmed: 1 word dropped from the front")


def test_fixed_parts_that_do_not_fit_are_a_clear_error():
    with pytest.raises(ContextError, match="take 6 tokens, but the model's window leaves 5"):
        build(context_window=10, max_new_tokens=5, memory="a b c d e f")


def test_authors_note_goes_to_the_top_of_short_texts():
    assert insert_authors_note("one\ntwo", "[N]", 3) == "[N]\none\ntwo"
    assert insert_authors_note("", "[N]", 3) == "[N]"
    assert insert_authors_note("a\nb\nc\nd", "[N]", 1) == "a\nb\nc\n[N]\nd"


def test_report_is_plain_data():
    built = build(recent_text="the lighthouse", lore=[LIGHTHOUSE])
    assert built.report()[0] == {"name": "Lighthouse", "kind": "lore", "tokens": 6, "included": True, "reason": "",
                                 "trigger": "“lighthouse” in recent text", "depth": 0}
