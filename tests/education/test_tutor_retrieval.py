"""Retrieval: tokenizer, BM25, min-max fusion, reranking, and the course boundary."""

import math

import pytest

from education.models import Course, MaterialChunk
from education.services import retrieval as r
from education.services.material import material_create, material_embed

pytestmark = pytest.mark.django_db


def test_tokenizer_lowercases_drops_stopwords_and_stems():
    assert r.tokenize("What IS the Thesis of these essays?") == ["thesis", "essay"]
    assert r.tokenize("cite cites cited citing") == ["cit"] * 4
    assert r.tokenize("Studies of planning transitions") == ["study", "plan", "transition"]


def test_bm25_matches_the_textbook_formula():
    docs = [["thesis", "claim", "claim"], ["transition", "idea"], ["thesis", "source", "source", "list"]]
    bm25 = r.BM25(docs, k1=1.5, b=0.75)
    avg = 3.0
    idf_thesis = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    idf_claim = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected_first = (idf_thesis * 1 * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 3 / avg))
                      + idf_claim * 2 * 2.5 / (2 + 1.5 * (0.25 + 0.75 * 3 / avg)))
    scores = bm25.scores(["thesis", "claim", "unknown"])
    assert scores[0] == pytest.approx(expected_first)
    assert scores[1] == 0.0
    assert scores[2] == pytest.approx(idf_thesis * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 4 / avg)))
    # A repeated query term counts once; a rare term weighs more than a common one.
    assert bm25.scores(["claim", "claim"]) == bm25.scores(["claim"])
    assert bm25.idf["claim"] > bm25.idf["thesis"]


def test_min_max_and_rerank_signals():
    assert r.min_max([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert r.min_max([1.0, 1.0]) == [0.0, 0.0]
    assert r.coverage(["thesis", "claim"], ["claim", "essay"]) == 0.5
    assert r.bigram_proximity(["thesis", "statement"], ["thesis", "statement", "essay"]) == 1.0
    assert r.bigram_proximity(["thesis", "statement"], ["statement", "thesis"]) == 0.0  # order matters
    assert r.bigram_proximity(["thesis", "statement"], ["thesis", "a", "b", "c", "d", "statement"]) == 0.0


QUESTIONS = [
    ("What is a thesis statement?", "Thesis statements", 0),
    ("Which words show contrast between ideas?", "Transitions", 0),
    ("What does an APA in-text citation give?", "Citing sources", 0),
    ("When should I revise my working thesis?", "Thesis statements", 1),
]


@pytest.mark.parametrize(("question", "title", "position"), QUESTIONS)
def test_bm25_retrieval_returns_the_right_passage(tutor_materials, course, question, title, position):
    result = r.passages_search(course=course, question=question, k=3)
    top = result.top.chunk
    assert (top.material.title, top.position) == (title, position)
    assert result.top.dense is None  # nothing is embedded: words alone
    assert [p.score for p in result.passages] == sorted((p.score for p in result.passages), reverse=True)


@pytest.mark.parametrize(("question", "title", "position"), QUESTIONS)
def test_hybrid_retrieval_with_embeddings_returns_the_right_passage(tutor_materials, course, tiny_encoder_spec,
                                                                    question, title, position):
    for material in tutor_materials.values():
        assert material_embed(material_id=material.pk) == "ready"
    result = r.passages_search(course=course, question=question, k=3)
    assert all(p.dense is not None and -1.0 <= p.dense <= 1.0 for p in result.passages)
    assert (result.top.chunk.material.title, result.top.chunk.position) == (title, position)


def test_rerank_prefers_the_passage_with_the_question_terms_in_order():
    from education.models import MaterialChunk

    # BM25 alone ties these two (same terms, same length); the bigram in order breaks the tie.
    scattered = MaterialChunk(pk=1, material_id=1, position=0, text="statement of facts and a thesis claim")
    adjacent = MaterialChunk(pk=2, material_id=1, position=1, text="a thesis statement and facts of claim")
    result = r.rank("thesis statement", [scattered, adjacent], k=2)
    assert result.passages[0].bm25 == pytest.approx(result.passages[1].bm25)
    assert [p.chunk.pk for p in result.passages] == [2, 1]


def test_only_the_courses_own_material_is_searched(tutor_materials, course, teacher):
    other = Course.objects.create(title="Biology", teacher=teacher)
    material_create(course=other, user=teacher, title="Cells", kind="text",
                    text="A thesis statement about mitochondria: the powerhouse of the cell.")
    result = r.passages_search(course=course, question="thesis statement mitochondria", k=10)
    assert {p.chunk.material.course_id for p in result.passages} == {course.pk}
    other_result = r.passages_search(course=other, question="thesis statement", k=10)
    assert [p.chunk.material.title for p in other_result.passages] == ["Cells"]


def test_failed_material_is_not_searched(tutor_materials, course):
    tutor_materials["Transitions"].__class__.objects.filter(pk=tutor_materials["Transitions"].pk).update(
        state="failed")
    result = r.passages_search(course=course, question="Which words show contrast?", k=10)
    assert "Transitions" not in {p.chunk.material.title for p in result.passages}


def test_the_best_sentence_cosine_reorders_passages_the_passage_vectors_find_alike():
    import numpy as np

    from education.models import MaterialChunk

    def chunk(pk, text, vector):
        return MaterialChunk(pk=pk, material_id=pk, position=0, text=text,
                             embedding=np.asarray(vector, dtype=np.float32).tobytes())

    # The passage vectors prefer `general`, and its terms come in the question's order; one sentence of
    # `specific` says exactly what the question asks.
    general = chunk(1, "A thesis states a claim. Filler words follow here.", [0.9, 0.1, 0.0])
    specific = chunk(2, "A claim needs a thesis. Other words follow there.", [0.5, 0.5, 0.0])
    question_vector = [1.0, 0.0, 0.0]

    embedded = []

    def embed(texts):
        embedded.extend(texts)
        return [[1.0, 0.0, 0.0] if t == "A claim needs a thesis." else [0.0, 1.0, 0.0] for t in texts]

    without = r.rank("thesis claim", [general, specific], question_vector=question_vector, k=2)
    assert [p.chunk.pk for p in without.passages] == [1, 2]
    assert without.passages[0].sentence_cosines == {}
    result = r.rank("thesis claim", [general, specific], question_vector=question_vector, k=2, embed=embed)
    assert [p.chunk.pk for p in result.passages] == [2, 1]
    assert result.passages[0].sentence_cosines == pytest.approx({"A claim needs a thesis.": 1.0})
    # Only the sentences that share a term with the question are embedded, once each.
    assert sorted(embedded) == ["A claim needs a thesis.", "A thesis states a claim."]


def _chunk(pk, text, vector, sentence_vectors=None):
    import numpy as np

    return MaterialChunk(pk=pk, material_id=pk, position=0, text=text,
                         embedding=np.asarray(vector, dtype=np.float32).tobytes(),
                         sentence_embeddings=(np.asarray(sentence_vectors, dtype=np.float32).tobytes()
                                              if sentence_vectors is not None else None))


def test_stored_sentence_vectors_are_read_and_only_passages_without_them_are_embedded():
    # As in the test above, but `specific` was embedded with its sentences: only `general`'s are embedded now.
    general = _chunk(1, "A thesis states a claim. Filler words follow here.", [0.9, 0.1, 0.0])
    specific = _chunk(2, "A claim needs a thesis. Other words follow there.", [0.5, 0.5, 0.0],
                      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    embedded = []

    def embed(texts):
        embedded.extend(texts)
        return [[0.0, 1.0, 0.0] for _ in texts]

    result = r.rank("thesis claim", [general, specific], question_vector=[1.0, 0.0, 0.0], k=2, embed=embed)
    assert embedded == ["A thesis states a claim."]
    assert [p.chunk.pk for p in result.passages] == [2, 1]
    assert result.passages[0].sentence_cosines == pytest.approx({"A claim needs a thesis.": 1.0})
    assert result.passages[1].sentence_cosines == pytest.approx({"A thesis states a claim.": 0.0})
    # Stored vectors need no encoder at question time.
    alone = r.rank("thesis claim", [general, specific], question_vector=[1.0, 0.0, 0.0], k=2)
    assert alone.passages[0].sentence_cosines == pytest.approx({"A claim needs a thesis.": 1.0})


@pytest.mark.parametrize("stored", [
    [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],  # another encoder's dimension
    [[1.0, 0.0, 0.0]],  # not one row per sentence
    [],  # none
], ids=["other-dimension", "other-count", "empty"])
def test_stored_sentence_vectors_that_do_not_fit_are_ignored(stored):
    specific = _chunk(2, "A claim needs a thesis. Other words follow there.", [0.5, 0.5, 0.0], stored)
    embedded = []

    def embed(texts):
        embedded.extend(texts)
        return [[0.6, 0.8, 0.0] for _ in texts]

    result = r.rank("thesis claim", [specific], question_vector=[1.0, 0.0, 0.0], k=1, embed=embed)
    assert embedded == ["A claim needs a thesis."]
    assert result.passages[0].sentence_cosines == pytest.approx({"A claim needs a thesis.": 0.6})


def test_the_tutor_embeds_only_the_question_and_ranks_as_when_it_embedded_the_sentences(
        tutor_materials, course, tiny_encoder_spec, monkeypatch, django_assert_num_queries):
    from mlcore import api as ml

    for material in tutor_materials.values():
        assert material_embed(material_id=material.pk) == "ready"
    question = "What is a thesis statement?"
    question_vector = ml.embed([question])[0]
    real_embed, calls = ml.embed, []

    def embed(texts):
        calls.append(list(texts))
        return [question_vector] if texts == [question] else real_embed(texts)

    monkeypatch.setattr(ml, "embed", embed)
    with django_assert_num_queries(2):  # the course's passages, then the top passages' sentence vectors
        stored = r.passages_search(course=course, question=question, k=3)
    assert calls == [[question]]
    assert stored.passages[0].sentence_cosines

    calls.clear()
    MaterialChunk.objects.update(sentence_embeddings=None)  # material embedded before they were stored
    embedded_now = r.passages_search(course=course, question=question, k=3)
    assert calls[0] == [question] and len(calls) == 2
    top_sentences = {s for p in embedded_now.passages[:r.SENTENCE_POOL] for s in r.sentences(p.chunk.text)}
    assert calls[1] and set(calls[1]) <= top_sentences
    assert [p.chunk.pk for p in stored.passages] == [p.chunk.pk for p in embedded_now.passages]
    for before, after in zip(embedded_now.passages, stored.passages, strict=True):
        assert after.sentence_cosines == pytest.approx(before.sentence_cosines, abs=1e-5)
        assert after.score == pytest.approx(before.score, abs=1e-5)


def _close_call(first_score=0.80, second_score=0.70):
    first = r.Passage(chunk=_chunk(1, "The harbour lamp was lit at dusk.", [1.0, 0.0]), score=first_score)
    second = r.Passage(chunk=_chunk(2, "The keeper was paid in coal.", [1.0, 0.0]), score=second_score)
    third = r.Passage(chunk=_chunk(3, "Gulls nest on the roof.", [1.0, 0.0]), score=0.1)
    return [first, second, third]


def test_the_likelihood_tie_break_puts_the_passage_the_lm_finds_the_question_likelier_after_first():
    asked = []

    def likelihood(contexts, continuations):
        asked.append((contexts, continuations))
        return [-3.0 if "lamp" in c else -1.5 for c in contexts]

    passages = r.likelihood_rerank(_close_call(), question="  How was the\nkeeper paid? ", likelihood=likelihood)
    assert [p.chunk.pk for p in passages] == [2, 1, 3]
    assert [p.question_likelihood for p in passages] == [-1.5, -3.0, None]
    assert [p.score for p in passages] == pytest.approx([0.70 + r.LIKELIHOOD_WEIGHT, 0.80, 0.1])
    # Only the top two are asked about, each passage in the prompt and the question (whitespace tidied) after it.
    [(contexts, continuations)] = asked
    assert contexts == [r.LIKELIHOOD_PROMPT.format(passage="The harbour lamp was lit at dusk."),
                        r.LIKELIHOOD_PROMPT.format(passage="The keeper was paid in coal.")]
    assert continuations == [" How was the keeper paid?"] * 2


def test_the_likelihood_tie_break_leaves_a_clear_ranking_alone_and_any_ranking_it_cannot_score():
    def never(contexts, continuations):
        raise AssertionError("the LM is asked only about a close call")

    clear = r.likelihood_rerank(_close_call(0.80, 0.80 - r.LIKELIHOOD_MARGIN), question="keeper?", likelihood=never)
    assert [p.chunk.pk for p in clear] == [1, 2, 3]
    unscored = r.likelihood_rerank(_close_call(), question="keeper?", likelihood=lambda contexts, continuations: None)
    assert [p.chunk.pk for p in unscored] == [1, 2, 3] and unscored[0].score == 0.80
    alike = r.likelihood_rerank(_close_call(), question="keeper?", likelihood=lambda c, k: [-2.0, -2.0])
    assert [(p.chunk.pk, p.score) for p in alike] == [(1, 0.80), (2, 0.70), (3, 0.1)]


def test_rank_breaks_a_close_call_with_the_likelihood_it_is_given():
    # Two passages alike to every signal but their last word: the ranking is a close call.
    lamp = _chunk(1, "The keeper lit the harbour lamp.", [1.0, 0.0])
    coal = _chunk(2, "The keeper lit the harbour coal.", [1.0, 0.0])
    plain = r.rank("What did the keeper light?", [lamp, coal], question_vector=[1.0, 0.0], k=2)
    assert [p.chunk.pk for p in plain.passages] == [1, 2]
    assert plain.passages[0].score - plain.passages[1].score < r.LIKELIHOOD_MARGIN

    def likelihood(contexts, continuations):
        return [-1.0 if "coal" in c else -2.0 for c in contexts]

    broken = r.rank("What did the keeper light?", [lamp, coal], question_vector=[1.0, 0.0], k=2,
                    likelihood=likelihood)
    assert [p.chunk.pk for p in broken.passages] == [2, 1]


def test_the_tutor_model_scores_the_tie_break_and_its_absence_leaves_the_ranking_alone(tutor_lm):
    contexts = [r.LIKELIHOOD_PROMPT.format(passage=t) for t in ("the keeper lit the lamp .", "once upon a time")]
    values = r.tutor_likelihood(contexts, [" the lamp"] * 2)
    assert len(values) == 2 and all(isinstance(v, float) and v < 0 for v in values) and values[0] != values[1]
    tutor_lm.state = "archived"
    tutor_lm.save(update_fields=["state"])
    assert r.tutor_likelihood(contexts, [" the lamp"] * 2) is None


def test_the_course_search_asks_the_tutor_model_only_when_the_setting_allows(course, teacher, tutor_lm, settings,
                                                                             monkeypatch):
    from mlcore import api as ml

    # Two documents alike but for their last word: the question cannot tell them apart on words alone.
    for word in ("lamp", "coal"):
        material_create(course=course, user=teacher, title=word, kind="text", text=f"The keeper lit the {word}.")
    asked, likelihood = [], ml.likelihood

    def spy(task, contexts, continuations):
        values = likelihood(task, contexts, continuations)  # the tiny tutor model scores them for real
        asked.append((task, values))
        return values

    monkeypatch.setattr(ml, "likelihood", spy)
    result = r.passages_search(course=course, question="What did the keeper light?", k=2)
    [(task, values)] = asked
    assert task == ml.Task.TUTOR and len(values) == 2
    assert [p.question_likelihood for p in result.passages] == values or \
        [p.question_likelihood for p in result.passages] == values[::-1]
    settings.EDUCATION_TUTOR_LIKELIHOOD_RERANK = False
    again = r.passages_search(course=course, question="What did the keeper light?", k=2)
    assert len(asked) == 1 and [p.question_likelihood for p in again.passages] == [None, None]
