"""The OpenAPI schema's view of the error answers every endpoint can give, so clients (and schemathesis) see them.

drf-spectacular documents only the success answer of an operation. Every /api/v1/ endpoint can also answer 401 (no
or a bad token), 403 (no role that opens it), 404 (no such object of yours, or a page past the end), 429 (rate
limited) and, where it reads a body, 400 (the fields and what is wrong with each) and 415 (a body it cannot read).
Operations that document one of these themselves keep their own description.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in words")


ERRORS = {
    "400": OpenApiResponse(OpenApiTypes.OBJECT, description="Bad input: each field with what is wrong with it, or a "
                                                            "`detail` saying why the request was refused"),
    "401": OpenApiResponse(ErrorSerializer, description="No token, or a token that is not valid"),
    "403": OpenApiResponse(ErrorSerializer, description="Your account has no role that opens this endpoint"),
    "404": OpenApiResponse(ErrorSerializer, description="No such object of yours, or a page past the last"),
    "415": OpenApiResponse(ErrorSerializer, description="A body in a content type this endpoint does not read"),
    "429": OpenApiResponse(ErrorSerializer, description="Too many requests: `detail` says when to try again"),
}


class ParlanceAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(ERRORS[code], code, direction=direction)
        return responses

    def _error_codes(self) -> list[str]:
        permissions = [type(p) for p in self.view.get_permissions()]
        open_to_all = all(issubclass(p, AllowAny) for p in permissions)
        codes = ["401"]  # a bad token is refused even where no login is needed
        if not open_to_all and not all(issubclass(p, IsAuthenticated) for p in permissions):
            codes.append("403")
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            codes += ["400", "415"]
        if "{" in self.path or self._is_list_view() and self._get_paginator():
            codes.append("404")
        if self.view.get_throttles():
            codes.append("429")
        return codes
