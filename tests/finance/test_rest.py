from datetime import UTC, datetime

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import Role
from finance.models import Article, IngestRun, Source

pytestmark = pytest.mark.django_db

PUSH_URL = "/api/v1/finance/articles/"
RUNS_URL = "/api/v1/finance/runs/"


def api_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def article(title, published_at="2025-03-02T14:30:00Z", **extra):
    return {"title": title, "body": extra.pop("body", ""), "url": extra.pop("url", ""), "published_at": published_at,
            **extra}


def push(api, articles, source="Harbor Wire", **extra):
    return api.post(PUSH_URL, {"source": source, "articles": articles, **extra}, format="json")


# (method, url, what an analyst gets): an empty push is refused, the list is open, an unknown run is not found.
ENDPOINTS = [("post", PUSH_URL, 400), ("get", RUNS_URL, 200), ("get", f"{RUNS_URL}999999/", 404)]


@pytest.mark.parametrize(("method", "url", "analyst_status"), ENDPOINTS)
@pytest.mark.parametrize("role", list(Role))
def test_only_analysts_reach_the_finance_endpoints(make_user, method, url, analyst_status, role):
    response = getattr(api_for(make_user(role)), method)(url, {}, format="json")
    if role == Role.ANALYST:
        assert response.status_code == analyst_status
    else:
        assert response.status_code == 403
        assert response.json()["detail"] == "Your account does not have a role that opens this endpoint."


@pytest.mark.parametrize(("method", "url"), [("post", PUSH_URL), ("get", RUNS_URL)])
def test_requests_without_a_token_are_401(method, url):
    assert getattr(APIClient(), method)(url, {}, format="json").status_code == 401


def test_a_student_token_cannot_push(make_user):
    response = push(api_for(make_user(Role.STUDENT)), [article("Norvale rallies")])
    assert response.status_code == 403
    assert not Article.objects.exists() and not IngestRun.objects.exists()


def test_push_stores_articles_and_reports_the_rest(make_user, companies, django_capture_on_commit_callbacks):
    analyst = make_user(Role.ANALYST)
    articles = [
        article("Norvale Bank profit jumps 18%", body="Norvale said loans grew.", url="https://harbor.example/a"),
        article("Kestrel Air cuts guidance", published_at="2025-03-03 09:00"),
        article("", body="no title"),
        article("Halvorsen halts mine", published_at="soon"),
        article("Norvale Bank profit jumps 18%", body="Norvale said loans grew."),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = push(api_for(analyst), articles, timezone="America/New_York")
    assert response.status_code == 201, response.json()
    run = IngestRun.objects.get()
    assert response.json() == {
        "run": run.pk, "accepted": 2, "duplicates": 1, "rejected": 2, "clustered": 0,
        "problems": [
            {"row": 3, "title": "", "reason": "the title is empty", "kind": "rejected"},
            {"row": 4, "title": "Halvorsen halts mine", "kind": "rejected",
             "reason": "the published time 'soon' is not a date (use e.g. 2026-11-29T14:30:00Z)"},
            {"row": 5, "title": "Norvale Bank profit jumps 18%", "reason": "same article as row 1",
             "kind": "duplicate"},
        ],
    }
    assert len(callbacks) == 1
    assert (run.via, run.user, run.source.name, run.source.kind, run.rows) == ("api", analyst, "Harbor Wire", "api", 5)
    assert Article.objects.get(title="Kestrel Air cuts guidance").published_at == datetime(2025, 3, 3, 14, 0,
                                                                                           tzinfo=UTC)
    again = push(api_for(analyst), articles[:2]).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert Article.objects.count() == 2 and Source.objects.count() == 1


def test_more_than_a_thousand_articles_is_a_400(make_user):
    response = push(api_for(make_user(Role.ANALYST)), [article(f"Story {n}") for n in range(1001)])
    assert response.status_code == 400
    assert response.json() == {"articles": [
        "At most 1,000 articles per request; this one has 1,001. Send them in several requests."]}
    assert not Article.objects.exists() and not IngestRun.objects.exists()


def test_a_thousand_articles_are_fine(make_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = push(api_for(make_user(Role.ANALYST)), [article(f"Story number {n}") for n in range(1000)])
    assert response.status_code == 201 and response.json()["accepted"] == 1000


@pytest.mark.parametrize(("body", "field"), [
    ({"source": "Harbor Wire", "articles": []}, "articles"),
    ({"source": "Harbor Wire", "articles": [{"title": "No date"}]}, "articles"),
    ({"source": "", "articles": [article("A")]}, "source"),
    ({"source": "Harbor Wire", "timezone": "Mars/Olympus", "articles": [article("A")]}, "timezone"),
])
def test_malformed_pushes_say_which_field(make_user, body, field):
    response = api_for(make_user(Role.ANALYST)).post(PUSH_URL, body, format="json")
    assert response.status_code == 400 and list(response.json()) == [field]
    assert not IngestRun.objects.exists()


def test_runs_list_only_the_callers_own(make_user, source, django_capture_on_commit_callbacks):
    me, other = make_user(Role.ANALYST), make_user(Role.ANALYST)
    with django_capture_on_commit_callbacks(execute=False):
        mine = push(api_for(me), [article("Norvale rallies"), article("")]).json()["run"]
        theirs = push(api_for(other), [article("Kestrel slips")]).json()["run"]
    api = api_for(me)
    listed = api.get(RUNS_URL).json()
    assert listed["count"] == 1
    assert listed["results"][0] | {"created_at": None} == {
        "id": mine, "source": "Harbor Wire", "via": "api", "filename": "", "created_at": None, "rows": 2,
        "accepted": 1, "duplicates": 0, "rejected": 1, "clustered": 0}
    detail = api.get(f"{RUNS_URL}{mine}/").json()
    assert detail["problems"] == [{"row": 2, "title": "", "reason": "the title is empty", "kind": "rejected"}]
    assert api.get(f"{RUNS_URL}{theirs}/").status_code == 404
