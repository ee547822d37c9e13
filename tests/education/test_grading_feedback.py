"""Feedback items: exact character spans, the rubric line each cites, and the text statistics."""

import pytest

from education.services import feedback as fb
from tests.education.conftest import GRADING_RUBRIC


def flagged(text, items, kind=None):
    return [(i["kind"], text[i["start"] : i["end"]]) for i in items if kind is None or i["kind"] == kind]


def test_grammar_patterns_flag_exact_spans():
    text = ("i think the the rule is fair. we could of argued more, but its a hard case and alot of us agree. "
            "Is it a honest answer or an useful one? It's own logic is more then enough.")
    items = fb.grammar_items(text)
    assert sorted(flagged(text, items)) == sorted([
        ("capitalization", "i"),
        ("grammar", "the the"),
        ("capitalization", "we"),
        ("grammar", "could of"),
        ("grammar", "its a"),
        ("grammar", "alot"),
        ("grammar", "a"),      # a honest
        ("grammar", "an"),     # an useful
        ("grammar", "It's own"),
        ("grammar", "more then"),
    ])
    honest = next(i for i in items if i["message"] == 'Use "an" before "honest".')
    assert text[honest["start"] : honest["end"] + 7] == "a honest"


def test_lowercase_i_is_not_confused_with_ie_or_words():
    text = "I said it, i.e. the plan. In it I trust; i'm sure."
    assert flagged(text, fb.grammar_items(text), "capitalization") == [("capitalization", "i")]
    assert text.index("i'm") == next(i["start"] for i in fb.grammar_items(text) if i["kind"] == "capitalization")


def test_spelling_skips_capitalised_words_numbers_and_prompt_words():
    text = "Becuase Zorblat said so, the teh 3rd recieve and the flurbix."
    items = fb.spelling_items(text, prompt="Explain the flurbix.")
    assert flagged(text, items) == [("spelling", "teh"), ("spelling", "recieve")]
    assert items[1]["message"] == 'Spelling: "recieve" — did you mean "receive"?'


def test_long_sentence_and_repetition_spans():
    long = " ".join(["word"] * 20 + ["and", "then"] + ["more"] * 20) + "."
    text = "Short one. " + long + " Next."
    items = fb.long_sentence_items(text)
    assert flagged(text, items) == [("long_sentence", long)]
    assert "42 words" in items[0]["message"]

    text = "Homework matters. Homework builds habits, and homework also builds trust."
    items = fb.repetition_items(text)
    assert flagged(text, items) == [("repetition", "homework")]
    assert items[0]["start"] == text.rindex("homework")


def test_repetition_needs_three_within_the_window():
    far = "Homework is good. " + "filler " * 60 + "Homework again. " + "filler " * 60 + "Homework."
    assert fb.repetition_items(far.replace("filler", "x")) == []


def test_paragraph_without_transition_is_flagged_on_its_first_sentence():
    text = "Phones help. They connect us.\n\nHowever, they distract. Rules help.\n\nSchools must act now. Soon."
    items = fb.transition_items(text)
    assert flagged(text, items) == [("transition", "Schools must act now.")]


def test_items_cite_the_matching_rubric_criterion():
    text = "the the cat.\n\nDogs bark."
    result = fb.essay_feedback(text, rubric=GRADING_RUBRIC)
    by_kind = {i["kind"]: i for i in result.items}
    assert by_kind["grammar"]["criterion"] == "Conventions"
    assert by_kind["grammar"]["rubric_line"] == "Spelling, grammar, punctuation and capitals are correct."
    assert by_kind["transition"]["criterion"] == "Organization"
    for item in result.items:
        assert 0 <= item["start"] < item["end"] <= len(text)


def test_no_citation_when_no_criterion_fits():
    result = fb.essay_feedback("the the cat.", rubric=[{"name": "Ideas", "description": "A clear claim."}])
    assert all("rubric_line" not in i for i in result.items)


def test_statistics_exact():
    stats = fb.statistics("The cat sat. The dog ran far away.")
    # 8 words, 2 sentences; syllables: the cat sat the dog ran far a-way = 9
    assert stats["words"] == 8 and stats["sentences"] == 2 and stats["words_per_sentence"] == 4.0
    assert stats["flesch_reading_ease"] == pytest.approx(206.835 - 1.015 * 4 - 84.6 * 9 / 8, abs=0.01)
    assert stats["type_token_ratio"] == pytest.approx(7 / 8)
    assert stats["rare_word_share"] == 0.0
    assert fb.statistics("   ")["words"] == 0


def test_highlight_segments_cover_the_text_in_order():
    text = "the the cat sat."
    items = fb.essay_feedback(text).items
    segments = fb.highlight_segments(text, items)
    assert "".join(s["text"] for s in segments) == text
    marked = [s for s in segments if s["items"]]
    assert marked[0]["text"] == "the" and "capitalization" in marked[0]["kinds"]


def test_there_their_and_to_too():
    text = "Parents call there children when fares are to expensive, and we go to school."
    items = fb.grammar_items(text)
    assert flagged(text, items) == [("grammar", "there children"), ("grammar", "to expensive")]
    assert items[0]["message"] == 'Possessive "their", not "there": "their children".'


def test_prompt_words_are_not_counted_as_repetition():
    text = "Phones distract. Phones ring. Phones buzz all day."
    assert fb.repetition_items(text, prompt="Should schools ban phones?") == []
    assert flagged(text, fb.repetition_items(text)) == [("repetition", "Phones")]
