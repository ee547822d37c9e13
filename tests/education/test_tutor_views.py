"""Tutor pages: who gets in, the upload form, asking, flagging, the material page, query counts."""

import pytest
from django.urls import reverse

from core.roles import Role
from education.models import Course, CourseMaterial, MaterialChunk, TutorMessage, TutorSession
from education.services import tutor as tutor_service
from tests.education.conftest import TUTOR_CORPUS

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(make_user, teacher, student, course):
    """The user a permission case is about, made on demand (only the one a test needs)."""

    def _person(name):
        if name == "classmate":  # same course, not the same sessions
            classmate = make_user(Role.STUDENT, username="s_mate")
            course.students.add(classmate)
            return classmate
        others = {"outsider": Role.STUDENT, "other_teacher": Role.TEACHER, "analyst": Role.ANALYST}
        return {"teacher": teacher, "student": student}.get(name) or make_user(others[name], username=name)

    return _person


@pytest.fixture
def objects(course, tutor_materials, tutor_session):
    message = tutor_service.tutor_ask(session=tutor_session, question="What is a thesis statement?")
    return {"course": course.pk, "material": tutor_materials["Transitions"].pk, "session": tutor_session.pk,
            "message": message.pk}


# (url name, object kind, method, {person: expected status}); anyone not listed gets the default
ACCESS = [
    ("tutor_home", None, "get", {"teacher": 200, "student": 200, "outsider": 200, "analyst": 403}),
    ("tutor_course", "course", "get", {"teacher": 200, "student": 200, "classmate": 200, "outsider": 404,
                                       "other_teacher": 404, "analyst": 403}),
    ("tutor_material_list", "course", "get", {"teacher": 200, "student": 403, "other_teacher": 404,
                                              "analyst": 403}),
    ("tutor_course_sessions", "course", "get", {"teacher": 200, "student": 403, "other_teacher": 404,
                                                "analyst": 403}),
    ("tutor_material_detail", "material", "get", {"teacher": 200, "student": 200, "outsider": 404,
                                                  "other_teacher": 404, "analyst": 403}),
    ("tutor_material_state", "material", "get", {"teacher": 200, "student": 403, "other_teacher": 404}),
    ("tutor_session", "session", "get", {"student": 200, "teacher": 200, "classmate": 404, "outsider": 404,
                                         "other_teacher": 404, "analyst": 403}),
    ("tutor_session_ask", "session", "post", {"student": 302, "teacher": 404, "classmate": 404, "analyst": 403}),
    ("tutor_message_reveal", "message", "post", {"student": 302, "teacher": 404, "classmate": 404,
                                                 "analyst": 403}),
    ("tutor_message_explain", "message", "get", {"student": 302, "teacher": 404, "classmate": 404,
                                                  "other_teacher": 404, "analyst": 403}),
    ("tutor_message_flag", "message", "post", {"student": 302, "teacher": 404, "classmate": 404,
                                               "other_teacher": 404}),
    ("tutor_course_ask", "course", "post", {"student": 302, "outsider": 404, "analyst": 403}),
    ("tutor_material_retry", "material", "post", {"teacher": 302, "student": 403, "other_teacher": 404}),
]
CASES = [(name, kind, method, person, status) for name, kind, method, table in ACCESS
         for person, status in table.items()]


@pytest.mark.parametrize(("name", "kind", "method", "who", "status"), CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_access(client, person, objects, name, kind, method, who, status):
    client.force_login(person(who))
    url = reverse(f"education:{name}", args=[objects[kind]] if kind else [])
    data = {"question": "What is a thesis statement?", "reason": "wrong passage"} if method == "post" else None
    response = getattr(client, method)(url, data)
    assert response.status_code == status


@pytest.mark.parametrize(("who", "status"), [("student", 200), ("teacher", 404), ("classmate", 404),
                                             ("other_teacher", 404)])
def test_only_the_asking_student_polls_an_answers_explanation(client, person, objects, who, status):
    TutorMessage.objects.filter(pk=objects["message"]).update(explanation="A thesis states the claim.")
    client.force_login(person(who))
    response = client.get(reverse("education:tutor_message_explain", args=[objects["message"]]),
                          HTTP_ACCEPT="application/json")
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"pending": False, "explanation": "A thesis states the claim.",
                                   "parts": [{"text": "A thesis states the claim.", "href": ""}]}


def test_anonymous_users_are_sent_to_log_in(client, objects):
    response = client.get(reverse("education:tutor_course", args=[objects["course"]]))
    assert response.status_code == 302 and "/login" in response["Location"]


def test_delete_is_for_the_courses_teacher_only(client, person, objects):
    url = reverse("education:tutor_material_delete", args=[objects["material"]])
    client.force_login(person("other_teacher"))
    assert client.post(url).status_code == 404
    client.force_login(person("student"))
    assert client.post(url).status_code == 403
    client.force_login(person("teacher"))
    response = client.post(url)
    assert response.status_code == 302
    assert not CourseMaterial.objects.filter(pk=objects["material"]).exists()
    assert not MaterialChunk.objects.filter(material_id=objects["material"]).exists()


def test_upload_a_markdown_file(client, teacher, course, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(teacher)
    upload = SimpleUploadedFile("guide.md", TUTOR_CORPUS["Thesis statements"].encode(), "text/markdown")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                               {"title": "Thesis guide", "file": upload, "pasted_kind": "markdown"})
    material = CourseMaterial.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("education:tutor_material_detail", args=[material.pk])
    assert (material.title, material.chunk_count, material.uploaded_by, material.state) == (
        "Thesis guide", 2, teacher, "pending")
    assert len(callbacks) == 1  # the embedding task is queued once the upload is committed


def test_paste_text(client, teacher, course):
    client.force_login(teacher)
    response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                           {"title": "Pasted", "text": "Some pasted notes.\r\n\r\nMore notes.", "pasted_kind": "text"})
    assert response.status_code == 302
    assert CourseMaterial.objects.get().text == "Some pasted notes.\n\nMore notes."


@pytest.mark.parametrize(("post", "message"), [
    ({"title": "X"}, "Choose a file or paste the text"),
    ({"title": "", "text": "Some notes"}, "Give pasted text a title."),
    ({"title": "Bin", "file": ("notes.txt", bytes(range(256)) * 10)}, "does not look like a text file"),
    ({"title": "Empty", "file": ("notes.md", b"  \n ")}, "notes.md is empty."),
    ({"title": "Zero", "file": ("notes.md", b"")}, "The submitted file is empty."),
    ({"title": "Zip", "file": ("notes.zip", b"PK\x03\x04")}, "upload a plain text (.txt), Markdown (.md) or PDF"),
    ({"title": "Big", "file": ("big.txt", b"word " * (2 * 1024 * 1024 + 1))}, "course material can be at most 10 MB"),
])
def test_bad_uploads_get_a_message_and_a_400(client, teacher, course, post, message):
    from django.core.files.uploadedfile import SimpleUploadedFile

    if "file" in post:
        name, data = post["file"]
        post = {**post, "file": SimpleUploadedFile(name, data)}
    client.force_login(teacher)
    response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                           {"pasted_kind": "text", **post})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not CourseMaterial.objects.exists()


def test_asking_from_the_course_page_opens_a_session_with_the_cited_answer(client, student, course, tutor_materials):
    client.force_login(student)
    response = client.post(reverse("education:tutor_course_ask", args=[course.pk]),
                           {"question": "What is a thesis statement?"})
    session = TutorSession.objects.get()
    message = session.messages.get()
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('education:tutor_session', args=[session.pk])}#message-{message.pk}"
    page = client.get(reverse("education:tutor_session", args=[session.pk])).content.decode()
    assert "A thesis statement is the sentence that states the main claim of an essay." in page
    chunk = tutor_materials["Thesis statements"].chunks.get(position=0)
    assert f"?passage={chunk.pk}#passage-{chunk.pk}" in page
    # The citation opens the document with the passage marked.
    detail = client.get(reverse("education:tutor_material_detail", args=[chunk.material_id]),
                        {"passage": chunk.pk}).content.decode()
    assert f'id="passage-{chunk.pk}"' in detail
    assert "<mark># Thesis statements\n\nA thesis statement is the sentence" in detail


@pytest.mark.parametrize(("question", "message"), [("", "Type a question first."),
                                                   ("x" * 501, "Keep the question under 500 characters")])
def test_bad_questions_get_a_message_and_no_rows(client, student, course, question, message):
    client.force_login(student)
    response = client.post(reverse("education:tutor_course_ask", args=[course.pk]), {"question": question})
    assert response.status_code == 400 and message in response.content.decode()
    assert not TutorSession.objects.exists() and not TutorMessage.objects.exists()


def test_hint_then_show_answer_then_flag(client, student, course, tutor_materials, tutor_session):
    course.hint_first = True
    course.save()
    client.force_login(student)
    client.post(reverse("education:tutor_session_ask", args=[tutor_session.pk]),
                {"question": "What is a thesis statement?"})
    message = TutorMessage.objects.get()
    page = client.get(reverse("education:tutor_session", args=[tutor_session.pk])).content.decode()
    assert "Show answer" in page and "states the main claim" not in page
    client.post(reverse("education:tutor_message_reveal", args=[message.pk]))
    page = client.get(reverse("education:tutor_session", args=[tutor_session.pk])).content.decode()
    assert "states the main claim" in page and "Hint given first" in page
    client.post(reverse("education:tutor_message_flag", args=[message.pk]), {"reason": "Too vague"})
    message.refresh_from_db()
    assert (message.flag_source, message.flag_reason) == ("student", "Too vague")


def test_the_teacher_sees_sessions_and_flags(client, teacher, student, other_student, course, tutor_materials,
                                             django_assert_max_num_queries):
    for who in (student, other_student):
        session = tutor_service.session_start(course=course, student=who)
        for question in ("What is a thesis statement?", "Tell me a joke", "What is the capital of France?"):
            tutor_service.tutor_ask(session=session, question=question)
    client.force_login(teacher)
    # session, user, roles, course, flagged messages with their students, sessions with counts
    with django_assert_max_num_queries(6):
        response = client.get(reverse("education:tutor_course_sessions", args=[course.pk]))
    assert [s.message_total for s in response.context["sessions"]] == [3, 3]
    assert [s.flagged_total for s in response.context["sessions"]] == [1, 1]
    flagged = list(response.context["flagged"])
    assert {m.session.student.username for m in flagged} == {"s_bo", "s_cy"}
    assert all(m.question == "Tell me a joke" for m in flagged)


def test_list_pages_have_pinned_query_counts(client, teacher, student, course, tutor_materials, tutor_session,
                                             django_assert_max_num_queries):
    for n in range(6):
        tutor_service.tutor_ask(session=tutor_session, question=f"What is a thesis statement? ({n})")
        Course.objects.create(title=f"Course {n}", teacher=teacher).students.add(student)
    client.force_login(student)
    with django_assert_max_num_queries(5):  # session, user, roles, courses with counts
        assert client.get(reverse("education:tutor_home")).status_code == 200
    with django_assert_max_num_queries(6):  # + course, material exists, sessions
        assert client.get(reverse("education:tutor_course", args=[course.pk])).status_code == 200
    with django_assert_max_num_queries(6):  # + session, messages, cited passages with their material
        response = client.get(reverse("education:tutor_session", args=[tutor_session.pk]))
    assert len(response.context["messages_list"]) == 6
    client.force_login(teacher)
    with django_assert_max_num_queries(5):  # + course, materials
        assert client.get(reverse("education:tutor_material_list", args=[course.pk])).status_code == 200


def test_the_material_state_endpoint(client, teacher, tutor_materials):
    client.force_login(teacher)
    material = tutor_materials["Transitions"]
    data = client.get(reverse("education:tutor_material_state", args=[material.pk])).json()
    assert data == {"state": "pending", "label": "Waiting to be embedded", "chunks": 1, "error": ""}
