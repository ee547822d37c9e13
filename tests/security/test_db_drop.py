"""A database connection lost in the middle of a request: a clear 503, nothing half-written, and the next request
works. The connection is really dropped: a receiver connected only here terminates the request's PostgreSQL backend
(pg_terminate_backend from a second connection) right after the request's first row is written."""

import contextlib

import psycopg
import pytest
import requests
from django.db import connection
from django.db.models.signals import post_save
from django.urls import reverse
from rest_framework.authtoken.models import Token

from core.middleware import DATABASE_UNAVAILABLE
from core.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL (CI runs these on it)")


@contextlib.contextmanager
def connection_dropped_after_first(model):
    """While inside, saving a `model` row terminates the saving connection's backend, once."""
    dropped = []

    def terminate(sender, **kwargs):
        if dropped:
            return
        from django.db import connection as request_connection  # the request thread's own connection

        pid = request_connection.connection.info.backend_pid
        with psycopg.connect(**request_connection.get_connection_params(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        dropped.append(pid)

    post_save.connect(terminate, sender=model, weak=False)
    try:
        yield dropped
    finally:
        post_save.disconnect(terminate, sender=model)


def rows(*models) -> list[int]:
    """Row counts read on the test's own connection, not the one that was dropped."""
    return [model.objects.count() for model in models]


def test_api_push_loses_its_connection_answers_503_json_and_writes_nothing(live_server, make_user):
    from finance.models import Article, IngestRun, Source

    analyst = make_user(Role.ANALYST)
    api = requests.Session()
    api.headers["Authorization"] = f"Token {Token.objects.create(user=analyst).key}"
    url = live_server.url + reverse("finance-articles-push")
    payload = {"source": "Dropwire", "articles": [
        {"title": f"Harbor freight volumes rose {n} percent", "body": "Port data.",
         "published_at": "2026-03-02T10:00:00Z"} for n in range(3)
    ]}

    with connection_dropped_after_first(Source) as dropped:
        response = api.post(url, json=payload, timeout=30)
    assert dropped, "the receiver never ran: the request did not write a source"
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"detail": DATABASE_UNAVAILABLE}
    assert rows(Source, Article, IngestRun) == [0, 0, 0]

    again = api.post(url, json=payload, timeout=30)  # the server connects afresh
    assert again.status_code == 201, again.text
    assert again.json()["accepted"] == 3
    assert rows(Source, Article, IngestRun) == [1, 3, 1]


def test_essay_submit_loses_its_connection_shows_the_503_page_and_writes_nothing(live_server, client, make_user):
    from education.models import Assignment, Course, Essay, EssayVersion

    student = make_user(Role.STUDENT)
    course = Course.objects.create(title="Writing 101", teacher=make_user(Role.TEACHER))
    course.students.add(student)
    assignment = Assignment.objects.create(course=course, title="Phones", prompt="Should schools ban phones?",
                                           score_min=1, score_max=6, rubric=[], traits=[])
    client.force_login(student)
    browser = requests.Session()
    browser.cookies.set("sessionid", client.cookies["sessionid"].value)
    csrf = "c" * 32  # a CSRF secret set by the "browser" itself; the form sends the same value
    browser.cookies.set("csrftoken", csrf)
    url = live_server.url + reverse("education:assignment", args=[assignment.pk])
    essay = {"csrfmiddlewaretoken": csrf, "text": "Phones distract students in class. " * 20}

    with connection_dropped_after_first(Essay) as dropped:
        response = browser.post(url, data=essay, allow_redirects=False, timeout=30)
    assert dropped, "the receiver never ran: the request did not write an essay"
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert DATABASE_UNAVAILABLE in response.text
    assert rows(Essay, EssayVersion) == [0, 0]

    again = browser.post(url, data=essay, allow_redirects=False, timeout=30)
    assert again.status_code == 302, again.text[:500]
    assert rows(Essay, EssayVersion) == [1, 1]
