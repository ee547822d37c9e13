from django.shortcuts import render

from core.roles import Role, role_required


@role_required(Role.OPERATOR)
def index(request):
    return render(request, "mlcore/index.html")
