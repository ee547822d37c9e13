import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.roles import Role


@pytest.fixture
def make_user(db):
    """Create a user holding the given roles."""
    counter = iter(range(10_000))

    def _make(*roles: Role, username: str | None = None, **extra):
        username = username or f"user{next(counter)}-{'-'.join(r.value for r in roles) or 'none'}"
        user = get_user_model().objects.create_user(username=username, password="pw-for-tests-only", **extra)
        user.groups.set([Group.objects.get_or_create(name=role.value)[0] for role in roles])
        return user

    return _make


@pytest.fixture
def client_with_roles(client, make_user):
    """A test client logged in as a fresh user holding the given roles."""

    def _login(*roles: Role):
        user = make_user(*roles)
        client.force_login(user)
        return client

    return _login
