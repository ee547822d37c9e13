from django.shortcuts import render

from core.roles import Role, role_required


@role_required(Role.STUDENT, Role.TEACHER)
def index(request):
    return render(request, "education/index.html")
