import pytest

from core.roles import Role
from education.models import Course
from tests.pdfs import text_pdf as tutor_pdf  # noqa: F401  (the tutor tests import it from here)


@pytest.fixture
def teacher(make_user):
    return make_user(Role.TEACHER, username="t_ada")


@pytest.fixture
def student(make_user):
    return make_user(Role.STUDENT, username="s_bo")


@pytest.fixture
def other_student(make_user):
    return make_user(Role.STUDENT, username="s_cy")


@pytest.fixture
def course(teacher, student):
    course = Course.objects.create(title="Writing 101", teacher=teacher)
    course.students.add(student)
    return course


# Tutor fixtures




TUTOR_CORPUS = {
    "Thesis statements": (
        "# Thesis statements\n\n"
        "A thesis statement is the sentence that states the main claim of an essay. It usually comes at the end "
        "of the introduction. A strong thesis is arguable and specific.\n\n"
        "## Revising the thesis\n\nRevise the working thesis when the evidence points somewhere else."
    ),
    "Transitions": (
        "# Transitions\n\n"
        "Transitions link one paragraph to the next. Words such as however and in contrast show a contrast "
        "between ideas. Therefore and as a result show cause and effect."
    ),
    "Citing sources": (
        "# Citing sources\n\n"
        "In APA style an in-text citation gives the author's surname and the year of publication. A reference "
        "list at the end gives the full details of every source."
    ),
}


@pytest.fixture
def tutor_materials(course, teacher):
    """The small known corpus as course material (not embedded: on_commit work does not run in these tests)."""
    from education.services.material import material_create

    return {title: material_create(course=course, user=teacher, title=title, kind="markdown", text=text)
            for title, text in TUTOR_CORPUS.items()}


@pytest.fixture
def tutor_session(course, student):
    from education.models import TutorSession

    return TutorSession.objects.create(course=course, student=student)


@pytest.fixture
def tutor_lm(tiny_lm_dir, mlcore_home):
    """The tiny random LM registered and activated as the education.tutor model."""
    from mlcore import services
    from mlcore.models import Family, Task

    version = services.model_version_register(task=Task.TUTOR, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
    return services.model_version_activate(version=version)


# --- essay grading (edugrade) ---------------------------------------------------------------------

GRADING_RUBRIC = [
    {"name": "Ideas", "description": "A clear position, developed with reasons and examples.",
     "lines": [{"score": 6, "text": "Insightful and fully developed."}, {"score": 1, "text": "No clear position."}]},
    {"name": "Organization", "description": "Paragraphs follow a plan and are linked by transitions.",
     "lines": [{"score": 6, "text": "Smooth transitions."}, {"score": 1, "text": "No order."}]},
    {"name": "Conventions", "description": "Spelling, grammar, punctuation and capitals are correct.",
     "lines": [{"score": 6, "text": "Almost no errors."}, {"score": 1, "text": "Errors block the meaning."}]},
]


@pytest.fixture
def assignment(course):
    from education.models import Assignment

    return Assignment.objects.create(
        course=course, title="Phones in school", prompt="Should schools ban phones in class? Argue your position.",
        rubric=GRADING_RUBRIC, score_min=1, score_max=6, traits=["Ideas", "Organization", "Conventions"],
    )


@pytest.fixture
def embedder(tiny_encoder_spec, mlcore_home, monkeypatch):
    """mlcore.api.embed served by the tiny random encoder (no active education.embed version needed).

    The tiny encoder reads 128 positions (MiniLM 512), so long essays are embedded in shorter chunks here.
    """
    from education.services import grading

    monkeypatch.setattr(grading, "EMBED_CHUNK_WORDS", 60)
    return tiny_encoder_spec


@pytest.fixture
def make_essay(make_user, course):
    """Create an essay version (and its student, enrolled in the course) without scoring it."""
    from education.models import Essay, EssayVersion

    counter = iter(range(1000))

    def _make(assignment, text, *, student=None):
        if student is None:
            student = make_user(Role.STUDENT, username=f"pupil{next(counter):03d}")
            assignment.course.students.add(student)
        essay, _ = Essay.objects.get_or_create(assignment=assignment, student=student, defaults={"text": text})
        number = essay.versions.count() + 1
        return EssayVersion.objects.create(essay=essay, number=number, text=text)

    return _make

