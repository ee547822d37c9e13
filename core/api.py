from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import api_view
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

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
    """POST: exchange a username and password for the user's API token. DELETE: revoke the token in use.

    A token lasts until it is revoked (here, or by deleting it in the admin); the next POST makes a new one.
    Both are rate limited (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"]) against password guessing.
    """

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else []

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, *args, **kwargs):
        Token.objects.filter(user=request.user).delete()
        return Response(status=204)
