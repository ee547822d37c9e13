"""Roles are Django groups. Apps declare which roles open them; views check role and owner."""

from dataclasses import dataclass
from enum import StrEnum
from functools import wraps

from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.urls import reverse


class Role(StrEnum):
    ANALYST = "analyst"
    STUDENT = "student"
    TEACHER = "teacher"
    WRITER = "writer"
    OPERATOR = "operator"


ALL_ROLES = frozenset(Role)


def user_roles(user) -> frozenset[str]:
    """The roles a user holds; a superuser holds them all. Cached on the user object."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_parlance_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = ALL_ROLES
        else:
            names = set(user.groups.values_list("name", flat=True))
            cached = frozenset(role for role in Role if role.value in names)
        user._parlance_roles = cached
    return cached


def has_any_role(user, roles) -> bool:
    return bool(user_roles(user) & frozenset(roles))


def role_required(*roles: Role):
    """View decorator: anonymous users go to login, users without one of `roles` get 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                from django.contrib.auth.views import redirect_to_login

                return redirect_to_login(request.get_full_path())
            if not has_any_role(request.user, roles):
                raise PermissionDenied("Your account does not have a role that opens this page.")
            return view(request, *args, **kwargs)

        wrapped.required_roles = frozenset(roles)
        return wrapped

    return decorator


@dataclass(frozen=True)
class AppEntry:
    """One app's card on the home page and link in the navigation."""

    label: str
    title: str
    description: str
    url_name: str
    roles: frozenset[str]

    @property
    def url(self) -> str:
        return reverse(self.url_name)


def app_entries() -> list[AppEntry]:
    """Entries declared by installed apps (`parlance_entry` on their AppConfig), in order.

    core reads them from the app registry so it never imports a domain app.
    """
    entries = []
    for config in apps.get_app_configs():
        entry = getattr(config, "parlance_entry", None)
        if entry:
            entries.append(AppEntry(label=config.label, **entry))
    return entries


def entries_for(user) -> list[AppEntry]:
    roles = user_roles(user)
    return [entry for entry in app_entries() if entry.roles & roles]


def api_role_permission(*roles: Role):
    """A DRF permission class admitting authenticated users that hold one of `roles`."""
    from rest_framework.permissions import BasePermission

    class HasRole(BasePermission):
        message = "Your account does not have a role that opens this endpoint."

        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated and has_any_role(request.user, roles))

    HasRole.__name__ = f"Has{''.join(r.value.title() for r in roles)}Role"
    return HasRole
