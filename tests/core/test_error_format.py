"""JSON or HTML errors: the API always gets JSON; the middleware's 413/503 also follow the Accept header; the
403/404/500 handlers do not."""

import pytest
from django.test import RequestFactory

from core.middleware import wants_json
from core.roles import Role

BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"

# (path, Accept, honouring Accept, not honouring it)
CASES = [
    ("/api/v1/jobs/", "", True, True),
    ("/api/v1/jobs/", BROWSER, True, True),
    ("/stories/jobs/1/status/", "application/json", True, False),
    ("/stories/jobs/1/status/", "application/json, text/html", False, False),
    ("/stories/", BROWSER, False, False),
    ("/stories/", "", False, False),
    ("/apiary/", "", False, False),
]


@pytest.mark.parametrize(("path", "accept", "with_accept", "without_accept"), CASES)
def test_wants_json(path, accept, with_accept, without_accept):
    request = RequestFactory().get(path, headers={"Accept": accept} if accept else {})
    assert wants_json(request) is with_accept
    assert wants_json(request, honour_accept=False) is without_accept


@pytest.mark.django_db
def test_a_missing_page_is_the_html_404_even_to_a_script_accepting_json(client):
    response = client.get("/no-such-page/", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_missing_api_path_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing/", headers={"Accept": BROWSER})
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_an_over_size_body_to_a_page_is_json_for_a_script_and_text_otherwise(client_with_roles, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    client = client_with_roles(Role.WRITER)
    body = {"title": "t" * 4096}
    script = client.post("/stories/", body, content_type="application/json", headers={"Accept": "application/json"})
    assert script.status_code == 413 and script.json()["detail"].startswith("The request is")
    page = client.post("/stories/", body, content_type="application/json", headers={"Accept": BROWSER})
    assert page.status_code == 413 and page["Content-Type"].startswith("text/plain")
