"""Project-wide middleware: a clear 503 when the database drops, and the Content-Security-Policy header."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database was unavailable; nothing was saved. Try again."


def wants_json(request, *, honour_accept: bool = True) -> bool:
    """Whether to answer this request's error as JSON: always under /api/ (as the schema says), and, with
    honour_accept, when the Accept header asks for JSON and not HTML (a page's script polling a status URL)."""
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "") if honour_accept else ""
    return "application/json" in accept and "text/html" not in accept


class DatabaseUnavailableMiddleware:
    """Answer 503 with a plain message when the database connection is lost or refused during a request.

    The services write in transactions, so a lost connection leaves nothing half-written: the message can
    say so. The broken connection is closed here, so the next request of this process connects afresh
    (CONN_HEALTH_CHECKS covers persistent connections between requests).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("Database unavailable during %s %s: %s", request.method, request.path, exception)
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
        if wants_json(request):
            response = JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503)
        else:
            # Rendered without the request: the context processors would read the user from the database.
            response = HttpResponse(render_to_string("503.html", {"message": DATABASE_UNAVAILABLE}), status=503)
        response["Retry-After"] = "5"
        return response


class RequestBodyLimitMiddleware:
    """Refuse (413) a body other than a file upload that is over DATA_UPLOAD_MAX_MEMORY_SIZE, before it is read.

    Django applies that limit only when request.body or request.POST is read; the API's parsers read the stream
    themselves, so a JSON body of any size would otherwise be read into memory. Multipart bodies are left to
    Django, which spills their files to disk, and to the upload forms, which check each kind's size limit.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and not request.content_type.startswith("multipart/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                return self.too_big(request, f"The request is {megabytes(length)}; the limit is {megabytes(limit)}.")
        return self.get_response(request)

    def process_exception(self, request, exception):
        # Django's own check, on the fields (not the files) of a multipart body: 413 with a message, not a bare 400.
        if isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return self.too_big(request, f"The form's fields come to more than {megabytes(limit)}, the limit.")
        return None

    @staticmethod
    def too_big(request, message: str):
        message += " Send less at a time; files go in a file field."
        if wants_json(request):
            return JsonResponse({"detail": message}, status=413)
        return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


class ContentSecurityPolicyMiddleware:
    """Set the Content-Security-Policy header (Django 5.2 has none built in) from settings.PARLANCE_CSP.

    Scripts come only from the site itself (every page loads its JS from static files; chart data is in
    json_script blocks, which are data, not script). Styles allow 'unsafe-inline': a few templates carry
    style attributes and Plotly writes its own <style> elements at run time.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = "; ".join(f"{name} {' '.join(values)}" for name, values in settings.PARLANCE_CSP.items())

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
