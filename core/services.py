"""State changes owned by core: demo accounts for a single-machine install."""

import json
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from core.roles import Role

DEMO_ACCOUNTS: list[tuple[str, list[Role], bool]] = [
    ("analyst", [Role.ANALYST], False),
    ("student", [Role.STUDENT], False),
    ("student2", [Role.STUDENT], False),
    ("teacher", [Role.TEACHER], False),
    ("writer", [Role.WRITER], False),
    ("operator", [Role.OPERATOR], False),
    ("admin", list(Role), True),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    roles: list[str]


def _demo_passwords() -> dict[str, str]:
    """Random per-install demo passwords, kept under var/ so every start prints the same ones."""
    path = settings.VAR_DIR / "demo-credentials.json"
    passwords = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for username, _, _ in DEMO_ACCOUNTS:
        if username not in passwords:
            passwords[username] = secrets.token_urlsafe(9)
            changed = True
    if changed:
        path.write_text(json.dumps(passwords, indent=2))
        path.chmod(0o600)
    return passwords


def demo_accounts_ensure() -> list[DemoAccount]:
    """Create (or reset) one demo user per role and an admin. Refused on a production install."""
    if not settings.PARLANCE_DEMO_ALLOWED:
        raise ImproperlyConfigured("Demo accounts are never created on a production install.")
    passwords = _demo_passwords()
    with transaction.atomic():
        return _demo_users_write(passwords)


def _demo_users_write(passwords: dict[str, str]) -> list[DemoAccount]:
    User = get_user_model()
    accounts = []
    for username, roles, is_admin in DEMO_ACCOUNTS:
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(passwords[username])
        user.is_staff = is_admin
        user.is_superuser = is_admin
        user.email = f"{username}@demo.parlance.invalid"
        user.save()
        user.groups.set([Group.objects.get_or_create(name=role.value)[0] for role in roles])
        accounts.append(DemoAccount(username, passwords[username], [r.value for r in roles]))
    return accounts
