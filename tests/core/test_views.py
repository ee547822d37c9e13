import pytest
from django.urls import reverse

from core.roles import Role

pytestmark = pytest.mark.django_db

APP_PAGES = {
    "finance:dashboard": {Role.ANALYST},
    "education:index": {Role.STUDENT, Role.TEACHER},
    "entertainment:index": {Role.WRITER},
    "mlcore:index": {Role.OPERATOR},
}


@pytest.mark.parametrize("url_name", [*APP_PAGES, "home"])
def test_anonymous_users_are_sent_to_login(client, url_name):
    url = reverse(url_name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize(
    ("url_name", "role"),
    [(url_name, role) for url_name in APP_PAGES for role in Role],
)
def test_app_pages_open_only_for_their_roles(client_with_roles, url_name, role):
    response = client_with_roles(role).get(reverse(url_name))
    assert response.status_code == (200 if role in APP_PAGES[url_name] else 403)


def test_a_user_without_a_role_is_refused_every_app(client_with_roles):
    client = client_with_roles()
    for url_name in APP_PAGES:
        assert client.get(reverse(url_name)).status_code == 403


@pytest.mark.parametrize("role", list(Role))
def test_home_shows_exactly_the_apps_a_role_opens(client_with_roles, role):
    response = client_with_roles(role).get(reverse("home"))
    assert response.status_code == 200
    shown = {entry.url_name for entry in response.context["entries"]}
    assert shown == {name for name, roles in APP_PAGES.items() if role in roles}
    for name in APP_PAGES:
        link = f'href="{reverse(name)}"'
        assert (link in response.content.decode()) == (name in shown)


def test_home_shows_every_app_to_a_user_with_several_roles(client_with_roles):
    response = client_with_roles(Role.ANALYST, Role.WRITER).get(reverse("home"))
    shown = {entry.url_name for entry in response.context["entries"]}
    assert shown == {"finance:dashboard", "entertainment:index"}


def test_home_explains_what_to_do_without_a_role(client_with_roles):
    response = client_with_roles().get(reverse("home"))
    assert response.context["entries"] == []
    assert "An administrator gives your account a role" in response.content.decode()


def test_superuser_sees_every_app(client, make_user):
    client.force_login(make_user(is_superuser=True, is_staff=True))
    response = client.get(reverse("home"))
    assert {entry.url_name for entry in response.context["entries"]} == set(APP_PAGES)


def test_login_and_logout(client, make_user):
    make_user(Role.TEACHER, username="tess")
    response = client.post(reverse("login"), {"username": "tess", "password": "pw-for-tests-only"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("education:index")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("education:index")).status_code == 302


def test_login_with_a_wrong_password_says_so(client, make_user):
    make_user(Role.TEACHER, username="tess")
    response = client.post(reverse("login"), {"username": "tess", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_csrf_is_enforced_on_login(make_user):
    from django.test import Client

    make_user(username="tess")
    response = Client(enforce_csrf_checks=True).post(
        reverse("login"), {"username": "tess", "password": "pw-for-tests-only"}
    )
    assert response.status_code == 403


def test_plotly_is_served_locally(client):
    response = client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert len(body) > 1_000_000 and b"plotly" in body[:2000].lower()


def test_unknown_pages_get_the_friendly_404(client_with_roles):
    response = client_with_roles(Role.ANALYST).get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
