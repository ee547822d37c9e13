"""The demo course material loads once, in passages, embedded with the real packaged MiniLM."""

import time

import pytest

from education.models import CourseMaterial, MaterialChunk
from education.seed_tutor import MATERIAL_DIR, tutor_demo_ensure
from education.services import tutor as tutor_service

# The tiny test encoder has 128 positions and the demo passages are longer, so this loads the real encoder.
pytestmark = [pytest.mark.django_db, pytest.mark.realmodel]


def test_demo_material_loads_once_and_answers_questions(course, student, mlcore_home):
    assert len(sorted(MATERIAL_DIR.glob("*.md"))) == 4
    started = time.monotonic()
    first = tutor_demo_ensure(course=course)
    assert time.monotonic() - started < 60
    assert list(CourseMaterial.objects.values_list("error", flat=True)) == [""] * 4
    assert first["created"] == ["Essay structure", "Thesis statements", "Paragraphs and transitions",
                                "Using and citing sources"]
    assert first["existing"] == [] and first["embedded"] == 4
    assert first["chunks"] == MaterialChunk.objects.count() > 12
    assert set(CourseMaterial.objects.values_list("state", flat=True)) == {"ready"}
    assert not MaterialChunk.objects.filter(embedding__isnull=True).exists()
    again = tutor_demo_ensure(course=course)
    assert again == {"created": [], "existing": first["created"], "chunks": first["chunks"], "embedded": 0}
    for chunk in MaterialChunk.objects.select_related("material"):
        assert chunk.material.text[chunk.char_start:chunk.char_end] == chunk.text
        assert 10 <= len(chunk.text.split()) <= 200

    session = tutor_service.session_start(course=course, student=student)
    cases = {
        "How long should a paragraph be?": "Most academic paragraphs are between five and eight sentences long. [1]",
        "What is a thesis statement?": "A thesis statement is the one or two sentences, usually at the end of the "
                                       "introduction, that state the main claim of the essay. [1]",
        "Which transitions show contrast?": "To show contrast: however, on the other hand, in contrast, "
                                            "nevertheless. [1]",
    }
    for question, expected in cases.items():
        assert tutor_service.tutor_ask(session=session, question=question).answer == expected
    for question in ("What is the capital of France?", "Who invented the printing press?"):
        assert tutor_service.tutor_ask(session=session, question=question).state == "not_in_material"
