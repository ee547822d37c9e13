from django.shortcuts import render

from core.roles import Role, role_required


@role_required(Role.ANALYST)
def index(request):
    return render(request, "finance/index.html")
