from django.shortcuts import render

from core.roles import Role, role_required


@role_required(Role.WRITER)
def index(request):
    return render(request, "entertainment/index.html")
