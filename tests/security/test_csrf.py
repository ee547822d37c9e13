"""CSRF: every POST-accepting route of the access table refuses a browser POST without a token, and writes nothing.

Exempt by design, and checked as such below:
- API requests authenticated by a token (Authorization: Token ...): no cookie rides along, so there is nothing to
  forge; DRF checks CSRF only for session-authenticated requests.
- api-token (exchange a password for a token): anonymous, answers with the token in the body and sets no cookie.
Session-authenticated API POSTs (a logged-in browser calling /api/v1/...) do need the token (DRF SessionAuthentication).
"""

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from entertainment.models import GenerationJob
from tests.security.conftest import ANON
from tests.security.test_access import ROUTES, build_url

CSRF_EXEMPT = {"api-token": "anonymous credential exchange; the token comes back in the body, no cookie is set"}
qn = connection.ops.quote_name
SNAPSHOT_APPS = ("core", "mlcore", "finance", "education", "entertainment", "auth", "authtoken")

# Posts that write when the token is there, so the refused request is shown to be the one that would have written.
WRITES = {
    "finance:watchlists": {"name": "Tech", "symbols": "NRVB"},
    "finance:watchlist_delete": {},
    "finance:report_schedule_delete": {},
    "finance:company_add": {"symbol": "KSTR", "name": "Kestrel Air", "sector": "Industrials", "aliases": ""},
    "education:tutor_material_delete": {},
    "education:tutor_course_ask": {"question": "What is a thesis statement?"},
    "education:assignment": {"text": "Phones distract students in class. " * 12},
    "entertainment:index": {"title": "A new world"},
    "entertainment:story_new": {"title": "Another story"},
    "entertainment:story_append": {"text": "The gulls cried."},
    "entertainment:lore_delete": {},
    "entertainment:node_delete": {},
    "mlcore:version_activate": {},
    "mlcore:job_cancel": {},
    "stories-api-project-stories": {"title": "Posted through the session"},
    "training-job-cancel": {},
}
POSTS = [route for route in ROUTES if "POST" in route.methods.split() and route.name not in CSRF_EXEMPT]


def snapshot() -> dict:
    """Every row of the project's tables (and users, groups, tokens), to see that nothing was written."""
    models = [model for name in SNAPSHOT_APPS for model in apps.get_app_config(name).get_models()]
    if connection.vendor != "postgresql":
        return {model._meta.label: list(model.objects.order_by("pk").values()) for model in models}
    tables = sorted({model._meta.db_table for model in models})
    # One round trip: a digest of each table's rows as text.
    sql = " UNION ALL ".join(
        f"SELECT %s, (SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {qn(table)} t)"
        for table in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql, tables)
        return dict(cursor.fetchall())


def _login(world, route):
    client = Client(enforce_csrf_checks=True)
    owner = next((world.users[i] for i in route.ok if world.users[i] is not None), None)
    if owner is not None and not route.public:
        client.force_login(owner)
    return client


def test_writes_are_post_routes():
    assert set(WRITES) <= {route.name for route in POSTS}


@pytest.mark.parametrize("route", POSTS, ids=lambda r: r.name)
def test_post_without_csrf_token_is_refused(world, route):
    client = _login(world, route)
    url = build_url(route, world)
    data = WRITES.get(route.name, {})
    before = snapshot()
    response = client.post(url, data)
    assert response.status_code == 403, f"POST {url} without a CSRF token: {response.status_code}"
    assert snapshot() == before, f"POST {url} without a CSRF token wrote to the database"

    # The same request with the token gets past the check (and writes, for the WRITES routes).
    client.cookies["csrftoken"] = "k" * 32
    response = client.post(url, data, HTTP_X_CSRFTOKEN="k" * 32)
    assert response.status_code != 403, f"POST {url} with a CSRF token: 403"
    if route.name in WRITES:
        assert snapshot() != before, f"POST {url} with a CSRF token wrote nothing: WRITES' payload is stale"


def test_token_authenticated_api_post_needs_no_csrf_token(world):
    """Exempt by design: a token is not sent by the browser on its own, so it cannot be forged across sites."""
    job = GenerationJob.objects.create(owner=world.users["writer"], project_id=world.pk["project"], kind="story",
                                       mode="continue", story_id=world.pk["story"], state="queued")
    client = Client(enforce_csrf_checks=True)
    token = Token.objects.create(user=world.users["writer"])
    response = client.post(f"/api/v1/stories/jobs/{job.pk}/cancel/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.state == GenerationJob.State.CANCELLED


def test_api_token_exchange_is_exempt(world):
    assert world.users[ANON] is None
    response = Client(enforce_csrf_checks=True).post("/api/v1/auth/token/", {"username": "nobody", "password": "x"})
    assert response.status_code == 400  # refused for the credentials, not for CSRF
