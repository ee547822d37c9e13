from core.roles import entries_for, user_roles


def navigation(request):
    """The apps the signed-in user's roles open, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_entries": [], "user_role_names": []}
    return {
        "nav_entries": entries_for(user),
        "user_role_names": sorted(user_roles(user)),
    }
