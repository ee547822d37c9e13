"""The short answer: a span of the selected sentence, by answer type; stored, shown escaped, held back by a hint."""

import re

import pytest
from django.urls import reverse

from education.selectors.tutor import phrase_marked
from education.services import tutor as svc
from education.services.material import material_create
from education.services.short_answer import answer_type, short_answer_extract


@pytest.mark.parametrize(("question", "kind"), [
    ("How many points did the Broncos score?", "number"),
    ("What was the average family size?", "number"),
    ("When did the castle burn down?", "date"),
    ("In what year was the treaty signed?", "date"),
    ("Who discovered radium?", "person"),
    ("Where was the treaty signed?", "place"),
    ("What is the powerhouse of the cell?", "other"),
])
def test_the_question_word_gives_the_answer_type(question, kind):
    assert answer_type(question) == kind


@pytest.mark.parametrize(("question", "sentence", "span"), [
    # number: the figure, not the other words near the question's
    ("How many points did the Broncos score in the last minutes?",
     "The Broncos scored 11 points in the last minutes of the game.", "11"),
    # date: the year, though other words sit nearer the question's
    ("When did the castle burn down?", "The castle burned down in 1842 after a long siege.", "1842"),
    # person: the whole capitalised name, never half of it
    ("Who discovered radium?", "Radium was discovered by Marie Curie in 1898.", "Marie Curie"),
    # place: a capitalised word after "in"
    ("Where was the treaty signed?", "The treaty was signed in Paris by both kings.", "Paris"),
    # other: the phrase next to the question's words, without its article
    ("What is the powerhouse of the cell?", "The mitochondria is the powerhouse of the cell.", "mitochondria"),
    # other: of equally near phrases, the longest (up to six words)
    ("What is a thesis statement?", "A thesis statement is the sentence that states the main claim of an essay.",
     "sentence that states the main claim"),
])
def test_the_short_answer_is_the_span_of_the_asked_type(question, sentence, span):
    assert short_answer_extract(question, sentence) == span


def test_the_short_answer_never_repeats_the_question_and_may_be_empty():
    assert short_answer_extract("Who discovered radium in 1898?", "Radium was discovered in 1898.") == ""
    assert "Broncos" not in short_answer_extract("Who did the Broncos beat?",
                                                 "The Broncos beat the Pittsburgh Steelers 23–16.")


RADIUM = "# Radium\n\nRadium was discovered by Marie Curie in 1898. It glows faintly in the dark."


@pytest.mark.django_db
def test_the_short_answer_is_stored_and_marked_escaped_inside_its_sentence(course, teacher, tutor_session, client,
                                                                          student):
    material_create(course=course, user=teacher, title="Radium", kind="markdown", text=RADIUM)
    message = svc.tutor_ask(session=tutor_session, question="Who discovered radium?")
    assert message.state == "answered"
    assert message.short_answer == "Marie Curie"
    assert message.answer == "Radium was discovered by Marie Curie in 1898. [1]"
    client.force_login(student)
    url = reverse("education:tutor_session", args=[tutor_session.pk])
    body = client.get(url).content.decode()
    assert re.search(r'Radium was discovered by <mark class="tutor-key"[^>]*>Marie Curie</mark> in 1898\. <a ', body)
    # Whatever the material holds is text on the page, the mark included.
    message.answer, message.short_answer = "Found by <b>Marie</b> Curie. [1]", "<b>Marie</b> Curie"
    message.save()
    body = client.get(url).content.decode()
    assert re.search(r'Found by <mark class="tutor-key"[^>]*>&lt;b&gt;Marie&lt;/b&gt; Curie</mark>\.', body)
    assert "<b>Marie</b>" not in body


def test_phrase_marked_splits_out_the_first_plain_occurrence_only():
    citation = object()
    parts = [("Curie said [1] ", None), ("[1]", citation), (" then Curie", None)]
    assert phrase_marked(parts, "Curie") == [("Curie", None, True), (" said [1] ", None, False),
                                             ("[1]", citation, False), (" then Curie", None, False)]
    # A citation mark is never the phrase; plain text after it can be.
    assert phrase_marked([("[2]", citation), ("then [2] and", None)], "[2]") == [
        ("[2]", citation, False), ("then ", None, False), ("[2]", None, True), (" and", None, False)]
    assert phrase_marked([("no answer here", None)], "") == [("no answer here", None, False)]


@pytest.mark.django_db
def test_hint_first_holds_the_short_answer_back_until_revealed(course, teacher, tutor_session, client, student):
    course.hint_first = True
    course.save()
    material_create(course=course, user=teacher, title="Radium", kind="markdown", text=RADIUM)
    message = svc.tutor_ask(session=tutor_session, question="Who discovered radium?")
    assert message.state == "hint" and message.short_answer == "Marie Curie"
    assert "Marie" not in message.hint and "Curie" not in message.hint
    client.force_login(student)
    url = reverse("education:tutor_session", args=[tutor_session.pk])
    assert "Curie" not in client.get(url).content.decode()
    svc.tutor_reveal(message=message)
    assert re.search(r'<mark class="tutor-key"[^>]*>Marie Curie</mark>', client.get(url).content.decode())
