"""Size limits: 100 MB uploads to every upload form, over-size API bodies, and user text capped before any model.

The uploads go through a real server (live_server) as a multipart body streamed from a file on disk, so neither
the test nor the server needs the file in memory: Django spills it to disk (FILE_UPLOAD_MAX_MEMORY_SIZE) and each
form refuses it by its size before anything reads it.
"""

import io
import tracemalloc
import uuid

import pytest
import requests
from django.apps import apps
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import Role

BIG = 100 * 1024 * 1024
CSRF = "c" * 32  # a CSRF secret the "browser" sets itself; the form sends the same value


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """100 MB of plain text lines, written in 1 MB pieces."""
    path = tmp_path_factory.mktemp("uploads") / "big.txt"
    line = b"title,body\nHarbor freight volumes rose,The port handled more containers than forecast.\n"
    block = line * (1024 * 1024 // len(line) + 1)
    with path.open("wb") as out:
        for _ in range(BIG // (1024 * 1024)):
            out.write(block[:1024 * 1024])
    return path


class MultipartFromDisk:
    """A multipart/form-data body of some fields and one file, read from disk a piece at a time."""

    piece = 1024 * 1024

    def __init__(self, fields: dict, *, name: str, filename: str, path):
        self.boundary = f"parlance-{uuid.uuid4().hex}"
        head = b"".join(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
                        for key, value in fields.items())
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.length = len(head) + path.stat().st_size + len(tail)
        self.parts = [io.BytesIO(head), path.open("rb"), io.BytesIO(tail)]

    def __len__(self):
        return self.length

    def read(self, size=-1):
        size = self.piece if size is None or size < 0 else size
        while self.parts:
            data = self.parts[0].read(size)
            if data:
                return data
            self.parts.pop(0).close()
        return b""

    def __iter__(self):
        while data := self.read(self.piece):
            yield data

    @property
    def content_type(self):
        return f"multipart/form-data; boundary={self.boundary}"


def _finance(make_user):
    return make_user(Role.ANALYST), {}


def _essay(make_user):
    from education.models import Assignment, Course

    student = make_user(Role.STUDENT)
    course = Course.objects.create(title="Writing 101", teacher=make_user(Role.TEACHER))
    course.students.add(student)
    assignment = Assignment.objects.create(course=course, title="Phones", prompt="Ban phones?", score_min=1,
                                           score_max=6, rubric=[], traits=[])
    return student, {"assignment_id": assignment.pk}


def _material(make_user):
    from education.models import Course

    teacher = make_user(Role.TEACHER)
    return teacher, {"course_id": Course.objects.create(title="Writing 101", teacher=teacher).pk}


def _operator(make_user):
    return make_user(Role.OPERATOR), {}


def _style(make_user):
    from entertainment.services import project_create

    writer = make_user(Role.WRITER)
    return writer, {"pk": project_create(owner=writer, title="Gull Rock").pk}


# endpoint, app whose tables must not change, setup, form fields, file field and name, words the refusal shows
UPLOADS = {
    "news csv": ("finance:upload", "finance", _finance, {"source": "Big Wire", "timezone": "UTC"},
                 ("file", "news.csv"), ["news.csv is 100.0", "the limit is 20.0"]),
    "feed file": ("finance:feeds", "finance", _finance, {"action": "upload", "source": "Big Feed"},
                  ("file", "feed.xml"), ["This file is 100.0", "feeds up to 10.0"]),
    "prices": ("finance:prices", "finance", _finance, {}, ("file", "prices.csv"),
               ["prices.csv is 100.0", "the limit is 5.0"]),
    "essay file": ("education:assignment", "education", _essay, {"text": ""}, ("upload", "essay.txt"),
                   ["The file is over 1 MB"]),
    "course material": ("education:tutor_material_list", "education", _material,
                        {"title": "Notes", "pasted_kind": "markdown", "text": ""}, ("file", "notes.md"),
                        ["notes.md is 100.0 MB", "at most 10 MB"]),
    "dataset": ("mlcore:datasets", "mlcore", _operator, {"kind": "classification", "text_column": "text"},
                ("file", "data.csv"), ["data.csv is 100.0", "the limit is 20.0"]),
    "style corpus": ("entertainment:style_upload", "entertainment", _style, {"epochs": "1"},
                     ("corpus", "corpus.txt"), ["corpus.txt is 100.0 MB", "the limit is 5 MB"]),
}


def table_counts(app_label: str) -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in apps.get_app_config(app_label).get_models()}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", list(UPLOADS))
def test_a_100_mb_upload_is_refused_with_its_size_and_writes_nothing(kind, live_server, client, make_user, big_file):
    url_name, app_label, setup, fields, (file_field, filename), expected = UPLOADS[kind]
    user, kwargs = setup(make_user)
    client.force_login(user)
    browser = requests.Session()
    browser.cookies.set("sessionid", client.cookies["sessionid"].value)
    browser.cookies.set("csrftoken", CSRF)
    before = table_counts(app_label)
    body = MultipartFromDisk({"csrfmiddlewaretoken": CSRF, **fields}, name=file_field, filename=filename,
                             path=big_file)

    tracemalloc.start()
    try:
        response = browser.post(live_server.url + reverse(url_name, kwargs=kwargs), data=body, timeout=120,
                                headers={"Content-Type": body.content_type}, allow_redirects=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert response.status_code == 400, response.text[:2000]
    text = " ".join(response.text.split()).replace("&nbsp;", " ").replace("\xa0", " ")
    for words in expected:
        assert words in text, f"{words!r} not in the refusal page"
    assert table_counts(app_label) == before
    # The file went to a temporary file, not into memory (client and server together stay far below 100 MB).
    assert peak < 25 * 1024 * 1024, f"{peak / 1024 / 1024:.0f} MB allocated while uploading"


@pytest.mark.django_db
def test_an_api_body_over_the_request_limit_is_refused_before_it_is_read(make_user, settings):
    from finance.models import Article, Source

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024  # the JSON body below is 2 MB: the limit, not the data, matters
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user(Role.ANALYST)).key}")
    articles = [{"title": f"Harbor freight volumes rose {n}", "body": "x" * 2000} for n in range(1000)]
    response = api.post(reverse("finance-articles-push"), {"source": "Big Wire", "articles": articles}, format="json")
    assert response.status_code == 413
    assert response.json()["detail"].startswith("The request is 2.0 MB; the limit is 1.0 MB.")
    assert (Source.objects.count(), Article.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_a_form_body_over_the_request_limit_is_a_413_not_a_500(client_with_roles, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    client = client_with_roles(Role.WRITER)
    response = client.post(reverse("entertainment:index"), {"title": "t" * 2 * 1024 * 1024})
    assert response.status_code == 413
    assert "more than 1.0 MB, the limit" in response.content.decode()


# OWASP LLM04 "model denial of service": user text is capped, and generation is rate limited per user, before any
# model call or queued job.


@pytest.fixture
def enrolled(make_user):
    from education.models import Assignment, Course

    student = make_user(Role.STUDENT)
    course = Course.objects.create(title="Writing 101", teacher=make_user(Role.TEACHER))
    course.students.add(student)
    assignment = Assignment.objects.create(course=course, title="Phones", prompt="Ban phones?", score_min=1,
                                           score_max=6, rubric=[], traits=[])
    return student, course, assignment


def page_text(response) -> str:
    import html

    return html.unescape(" ".join(response.content.decode().split()))


@pytest.mark.django_db
def test_an_over_long_essay_is_refused_before_it_is_stored_or_scored(client, enrolled):
    from education.models import Essay, EssayVersion
    from education.services.grading import MAX_CHARS

    student, _, assignment = enrolled
    client.force_login(student)
    # Few words, many characters: the word limit alone would let it through to the scorer.
    text = " ".join(["x" * 999] * (MAX_CHARS // 1000 + 1))
    response = client.post(reverse("education:assignment", args=[assignment.pk]), {"text": text})
    assert response.status_code == 400
    assert f"the limit is {MAX_CHARS:,}" in page_text(response)
    assert (Essay.objects.count(), EssayVersion.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_essay_submissions_are_rate_limited_per_student(client, enrolled, settings):
    from education.models import EssayVersion

    settings.EDUCATION_ESSAYS_PER_MINUTE = 2
    student, _, assignment = enrolled
    client.force_login(student)
    url = reverse("education:assignment", args=[assignment.pk])
    answers = [client.post(url, {"text": f"Phones distract students in class, draft {n}. " * 10})
               for n in range(3)]
    assert [a.status_code for a in answers] == [302, 302, 400]
    assert "You can submit 2 essay versions a minute" in page_text(answers[-1])
    assert EssayVersion.objects.count() == 2  # the third was never stored, so never queued for scoring


@pytest.mark.django_db
def test_an_over_long_tutor_question_is_refused_before_any_model_call(client, enrolled):
    from education.models import TutorMessage, TutorSession
    from education.services.tutor import QUESTION_MAX_CHARS

    student, course, _ = enrolled
    client.force_login(student)
    response = client.post(reverse("education:tutor_course_ask", args=[course.pk]),
                           {"question": "why " * (QUESTION_MAX_CHARS // 4 + 1)})
    assert response.status_code == 400
    assert f"under {QUESTION_MAX_CHARS} characters" in page_text(response)
    assert (TutorSession.objects.count(), TutorMessage.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_tutor_questions_are_rate_limited_per_student(client, enrolled, settings):
    from education.models import TutorMessage, TutorSession

    settings.EDUCATION_TUTOR_QUESTIONS_PER_MINUTE = 2
    student, course, _ = enrolled
    client.force_login(student)
    url = reverse("education:tutor_course_ask", args=[course.pk])
    answers = [client.post(url, {"question": f"What is a thesis statement, question {n}?"}) for n in range(3)]
    assert [a.status_code for a in answers] == [302, 302, 400]
    assert "You can ask 2 questions a minute" in page_text(answers[-1])
    assert (TutorSession.objects.count(), TutorMessage.objects.count()) == (2, 2)

    session = TutorSession.objects.first()  # a session of its own is limited the same way
    again = client.post(reverse("education:tutor_session_ask", args=[session.pk]), {"question": "And a thesis?"})
    assert again.status_code == 400
    assert TutorMessage.objects.count() == 2


@pytest.mark.django_db
def test_an_over_long_player_line_queues_no_generation(make_user):
    from entertainment import services as studio
    from entertainment.models import Character, GenerationJob, Project

    writer = make_user(Role.WRITER)
    project = Project.objects.create(owner=writer, title="Gull Rock")
    character = Character.objects.create(project=project, name="Maren")
    tree = studio.tree_save(project=project, title="At the door")
    api = APIClient()
    api.force_authenticate(writer)
    response = api.post(reverse("stories-api-tree-generate", args=[tree.pk]),
                        {"character": character.pk, "player_line": "knock " * 200}, format="json")
    assert response.status_code == 400
    assert "player_line" in response.json()
    assert GenerationJob.objects.count() == 0
