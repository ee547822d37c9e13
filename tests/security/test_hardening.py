"""Deployment hardening: production settings, security headers (with a Content-Security-Policy the pages keep
to), API throttling and token revocation. The deploy check itself and the refusal to start without
DJANGO_SECRET_KEY are in tests/core/test_settings.py."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import Role
from tests.core.test_settings import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_production_settings_are_https_only_and_limited(tmp_path):
    names = ["DEBUG", "SECRET_KEY", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
             "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SESSION_COOKIE_HTTPONLY",
             "DATA_UPLOAD_MAX_MEMORY_SIZE", "FILE_UPLOAD_MAX_MEMORY_SIZE", "REST_FRAMEWORK", "MIDDLEWARE"]
    code = f"import django, json; django.setup(); from django.conf import settings as s; " \
           f"print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "DATABASE_URL"}
    env.update(PARLANCE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="core.settings", **PRODUCTION_ENV)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    prod = json.loads(out.strip().splitlines()[-1])

    assert prod["DEBUG"] is False
    assert prod["SECRET_KEY"] == PRODUCTION_ENV["DJANGO_SECRET_KEY"]  # from the environment, not a file or default
    assert not (tmp_path / "secret_key").exists()
    assert prod["SESSION_COOKIE_SECURE"] and prod["CSRF_COOKIE_SECURE"] and prod["SESSION_COOKIE_HTTPONLY"]
    assert prod["SECURE_SSL_REDIRECT"] and prod["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert prod["SECURE_HSTS_SECONDS"] >= 60 * 60 * 24 * 365
    assert 0 < prod["FILE_UPLOAD_MAX_MEMORY_SIZE"] <= prod["DATA_UPLOAD_MAX_MEMORY_SIZE"] <= 10 * 1024 * 1024
    rates = prod["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"]
    assert {"anon", "user", "token"} <= set(rates) and all(rates.values())
    assert {"core.middleware.ContentSecurityPolicyMiddleware", "core.middleware.RequestBodyLimitMiddleware",
            "core.middleware.DatabaseUnavailableMiddleware"} <= set(prod["MIDDLEWARE"])


def test_the_secret_key_is_never_committed():
    settings_source = (ROOT / "core" / "settings.py").read_text()
    assert re.search(r"SECRET_KEY\s*=\s*['\"]", settings_source) is None
    assert "var/" in (ROOT / ".gitignore").read_text().splitlines()  # where a single-machine install keeps its key


SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.mark.django_db
@pytest.mark.parametrize("who, url_name", [(None, "login"), (Role.ANALYST, "home"), (Role.ANALYST, "api-me")])
def test_responses_carry_the_security_headers(client, make_user, who, url_name):
    if who is not None:
        client.force_login(make_user(who))
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value, header
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["style-src"] == "'self' 'unsafe-inline'"  # style attributes and Plotly's own <style> elements


# Pages with the most script on them: charts (Plotly and json_script data), streaming generation, the API docs.
CSP_PAGES = [
    (None, "login", {}), (Role.ANALYST, "home", {}), (Role.ANALYST, "finance:dashboard", {}),
    (Role.STUDENT, "education:index", {}), (Role.WRITER, "entertainment:index", {}),
    (Role.OPERATOR, "mlcore:datasets", {}), (Role.ANALYST, "api-docs", {}),
]
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
EVENT_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", re.I)


@pytest.mark.django_db
@pytest.mark.parametrize("who, url_name, kwargs", CSP_PAGES)
def test_pages_keep_to_the_script_policy(client, make_user, who, url_name, kwargs):
    """script-src 'self' blocks inline scripts, on* handlers and javascript: URLs: the pages must have none."""
    if who is not None:
        client.force_login(make_user(who))
    response = client.get(reverse(url_name, kwargs=kwargs))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script" in page  # the page does load script, from files
    assert INLINE_SCRIPT.findall(page) == []
    assert EVENT_ATTRIBUTE.findall(page) == []
    assert JAVASCRIPT_URL.findall(page) == []


@pytest.fixture
def fresh_throttles():
    cache.clear()  # the throttles count in the default cache; other tests must not see this one's requests
    yield
    cache.clear()


@pytest.mark.django_db
def test_the_token_endpoint_is_rate_limited(make_user, fresh_throttles, settings):
    make_user(username="ana")
    api = APIClient()
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"].split("/")[0])
    answers = [api.post(reverse("api-token"), {"username": "ana", "password": f"guess-{n}"}).status_code
               for n in range(limit + 1)]
    assert answers == [400] * limit + [429]
    refused = api.post(reverse("api-token"), {"username": "ana", "password": "pw-for-tests-only"})
    assert refused.status_code == 429  # even the right password waits: guessing gains nothing
    assert "throttled" in refused.json()["detail"].lower()


@pytest.mark.django_db
def test_a_token_can_be_revoked(make_user, fresh_throttles):
    make_user(Role.ANALYST, username="ana")
    api = APIClient()
    key = api.post(reverse("api-token"), {"username": "ana", "password": "pw-for-tests-only"}).json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(reverse("api-me")).status_code == 200

    assert api.delete(reverse("api-token")).status_code == 204
    assert not Token.objects.filter(key=key).exists()
    assert api.get(reverse("api-me")).status_code == 401
    assert APIClient().delete(reverse("api-token")).status_code == 401  # revoking needs the token itself
