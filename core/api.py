from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view
from rest_framework.response import Response

from core.roles import user_roles


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


@extend_schema(responses=MeSerializer)
@api_view(["GET"])
def me(request):
    """The authenticated user and their roles."""
    data = {"username": request.user.get_username(), "roles": sorted(user_roles(request.user))}
    return Response(MeSerializer(data).data)


class TokenView(ObtainAuthToken):
    """Exchange a username and password for the user's API token."""
