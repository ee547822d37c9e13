"""API tokens are scoped to their user: another user's objects are 404 (and untouched), a token of the wrong role is
403, an invalid or missing token 401. Requests here carry only the token (no session)."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from core.roles import Role
from entertainment.models import GenerationJob, Story
from tests.security.test_access import ROUTES, build_url

API = [route for route in ROUTES if route.api]
OWNED_API = [route for route in API if route.owned]


def token_client(user) -> Client:
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def call(client, route, url, method):
    return client.post(url, {}, content_type="application/json") if method == "POST" else client.get(url)


def _cases(routes):
    for route in routes:
        for method in route.methods.split():
            yield pytest.param(route, method, id=f"{route.name}-{method}")


@pytest.mark.parametrize(("route", "method"), list(_cases(OWNED_API)))
def test_token_of_another_user_gets_404(world, route, method):
    role = next(iter(route.ok))
    response = call(token_client(world.strangers[role]), route, build_url(route, world), method)
    assert response.status_code == 404, f"{method} {route.name} with another {role}'s token: {response.status_code}"


@pytest.mark.parametrize(("route", "method"), list(_cases(OWNED_API)))
def test_token_of_the_owner_gets_in(world, route, method):
    """The control for the test above: the same request with the owner's token is answered."""
    role = next(iter(route.ok))
    response = call(token_client(world.users[role]), route, build_url(route, world), method)
    if method == route.method:
        assert response.status_code == route.ok[role], (method, route.name, response.status_code)
    else:  # the second method of a GET POST route, posted empty: refused for its content, not for access
        assert response.status_code == 400, (method, route.name, response.status_code)


def _wrong_roles():
    for route in API:
        for role in (r.value for r in Role if r.value not in route.ok):
            for method in route.methods.split():
                yield pytest.param(route, method, role, id=f"{route.name}-{method}-{role}")


@pytest.mark.parametrize(("route", "method", "role"), list(_wrong_roles()))
def test_token_of_the_wrong_role_gets_403(world, route, method, role):
    response = call(token_client(world.users[role]), route, build_url(route, world), method)
    assert response.status_code == 403, f"{method} {route.name} with a {role} token: {response.status_code}"


@pytest.mark.parametrize("header", ["Token 0123456789abcdef0123456789abcdef01234567", "Token a b", None])
@pytest.mark.parametrize(("route", "method"), list(_cases(API)))
def test_invalid_or_missing_token_gets_401(world, route, method, header):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = call(client, route, build_url(route, world), method)
    assert response.status_code == 401, f"{method} {route.name} with {header!r}: {response.status_code}"


def test_lists_hold_only_the_token_users_objects(world):
    for route_name, role in (("ingest-run-list", "analyst"), ("stories-api-projects", "writer")):
        url = reverse(route_name)
        owner = token_client(world.users[role]).get(url).json()
        stranger = token_client(world.strangers[role]).get(url).json()
        assert owner["count"] == 1, (route_name, owner)
        assert stranger["count"] == 0, (route_name, stranger)


def test_another_writers_token_changes_nothing(world):
    owner = world.users["writer"]
    job = GenerationJob.objects.create(owner=owner, project_id=world.pk["project"], kind="story", mode="continue",
                                       story_id=world.pk["story"], state="queued")
    stranger = token_client(world.strangers["writer"])
    assert stranger.post(f"/api/v1/stories/jobs/{job.pk}/cancel/").status_code == 404
    assert stranger.post(f"/api/v1/stories/projects/{world.pk['project']}/stories/", {"title": "Planted"},
                         content_type="application/json").status_code == 404
    job.refresh_from_db()
    assert job.state == GenerationJob.State.QUEUED
    assert not Story.objects.filter(title="Planted").exists()
    # The owner's token does both.
    assert token_client(owner).post(f"/api/v1/stories/jobs/{job.pk}/cancel/").status_code == 200
    job.refresh_from_db()
    assert job.state == GenerationJob.State.CANCELLED


def test_token_speaks_for_its_user_only(world, make_user):
    analyst = make_user(Role.ANALYST)
    response = Client().post(reverse("api-token"), {"username": analyst.username, "password": "pw-for-tests-only"})
    assert response.status_code == 200
    key = response.json()["token"]
    assert key == Token.objects.get(user=analyst).key
    me = Client(HTTP_AUTHORIZATION=f"Token {key}").get(reverse("api-me")).json()
    assert me == {"username": analyst.username, "roles": ["analyst"]}
    wrong = Client().post(reverse("api-token"), {"username": analyst.username, "password": "not-it"})
    assert wrong.status_code == 400 and "token" not in wrong.json()


def test_deactivated_users_token_stops_working(world, make_user):
    user = make_user(Role.WRITER)
    client = token_client(user)
    assert client.get(reverse("stories-api-projects")).status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get(reverse("stories-api-projects")).status_code == 401
