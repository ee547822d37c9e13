from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.middleware import wants_json
from core.roles import entries_for, user_roles
from core.selectors import system_health


@login_required
def home(request):
    return render(
        request,
        "core/home.html",
        {"entries": entries_for(request.user), "roles": sorted(user_roles(request.user))},
    )


@require_GET
@never_cache
def healthz(request):
    """JSON health for load balancers and operators: 200 unless the database or broker is down."""
    health = system_health()
    return JsonResponse(health, status=503 if health["status"] == "down" else 200)


# JSON errors only under /api/, where the schema documents them; the site's 403/404/500 pages stay HTML for any Accept.
def permission_denied(request, exception=None):
    if wants_json(request, honour_accept=False):
        return JsonResponse({"detail": str(exception or "") or "You do not have permission to do this."}, status=403)
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request, exception=None):
    if wants_json(request, honour_accept=False):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if wants_json(request, honour_accept=False):
        return JsonResponse({"detail": "Something went wrong on our side; nothing was saved half-way."}, status=500)
    return render(request, "500.html", status=500)
