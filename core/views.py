from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

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


def permission_denied(request, exception=None):
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)
