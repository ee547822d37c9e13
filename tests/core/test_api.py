import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import Role

pytestmark = pytest.mark.django_db


def test_me_needs_authentication():
    assert APIClient().get(reverse("api-me")).status_code == 401


def test_token_exchange_and_me(make_user):
    make_user(Role.ANALYST, Role.WRITER, username="ana")
    api = APIClient()
    response = api.post(reverse("api-token"), {"username": "ana", "password": "pw-for-tests-only"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(key=token).user.username == "ana"

    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(reverse("api-me")).json() == {"username": "ana", "roles": ["analyst", "writer"]}


def test_a_token_speaks_only_for_its_user(make_user):
    ana, bob = make_user(Role.ANALYST, username="ana"), make_user(Role.STUDENT, username="bob")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    assert api.get(reverse("api-me")).json()["username"] == "bob"
    assert ana.username != "bob"


def test_bad_token_is_refused():
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert api.get(reverse("api-me")).status_code == 401


def test_openapi_schema_lists_the_endpoints(client):
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Parlance API"
    assert "/api/v1/me/" in schema["paths"]


def test_api_docs_page_uses_local_assets(client_with_roles):
    response = client_with_roles(Role.ANALYST).get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn." not in html and "swagger-ui" in html


def test_the_openapi_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/models/jobs/" in out.read_text()
