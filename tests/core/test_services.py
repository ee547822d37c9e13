import pytest
from django.contrib.auth import authenticate

from core.roles import user_roles
from core.services import DEMO_ACCOUNTS, demo_accounts_ensure

pytestmark = pytest.mark.django_db


def test_demo_accounts_can_log_in_with_their_roles(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    accounts = demo_accounts_ensure()
    assert [a.username for a in accounts] == [name for name, _, _ in DEMO_ACCOUNTS]
    for account in accounts:
        user = authenticate(username=account.username, password=account.password)
        assert user is not None
        assert set(user_roles(user)) == set(account.roles)


def test_demo_accounts_are_stable_across_reruns(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = demo_accounts_ensure()
    second = demo_accounts_ensure()
    assert first == second


def test_demo_accounts_are_refused_in_production(settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    settings.VAR_DIR = tmp_path
    settings.PARLANCE_DEMO_ALLOWED = False
    with pytest.raises(ImproperlyConfigured):
        demo_accounts_ensure()
