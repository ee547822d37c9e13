import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import Role
from mlcore import services
from mlcore.models import Family, Task, TrainingJob

pytestmark = pytest.mark.django_db

ENDPOINTS = ["/api/v1/models/versions/", "/api/v1/models/datasets/", "/api/v1/models/jobs/"]


def api_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("role", list(Role))
def test_only_operators_reach_the_model_endpoints(make_user, url, role):
    response = api_for(make_user(role)).get(url)
    assert response.status_code == (200 if role == Role.OPERATOR else 403)


@pytest.mark.parametrize("url", ENDPOINTS)
def test_anonymous_requests_are_refused(url):
    assert APIClient().get(url).status_code == 401


def test_start_poll_and_cancel_a_job(make_user, sentiment_dataset, django_capture_on_commit_callbacks):
    api = api_for(make_user(Role.OPERATOR))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post("/api/v1/models/jobs/", {"task": "finance.sentiment", "dataset": sentiment_dataset.pk,
                                                     "params": {"epochs": 1}}, format="json")
    assert response.status_code == 201, response.json()
    assert len(callbacks) == 1
    job_id = response.json()["id"]
    polled = api.get(f"/api/v1/models/jobs/{job_id}/").json()
    assert polled["state"] == "queued" and polled["params"] == {"epochs": 1} and polled["progress"] == 0
    assert api.post(f"/api/v1/models/jobs/{job_id}/cancel/").json()["state"] == "cancelled"
    assert api.post(f"/api/v1/models/jobs/{job_id}/cancel/").status_code == 409


def test_starting_a_job_on_the_wrong_dataset_is_a_clear_400(make_user, sentiment_dataset):
    api = api_for(make_user(Role.OPERATOR))
    response = api.post("/api/v1/models/jobs/", {"task": "education.essay_score", "dataset": sentiment_dataset.pk},
                        format="json")
    assert response.status_code == 400
    assert "trains on a text with a number dataset" in response.json()["detail"]
    response = api.post("/api/v1/models/jobs/", {"task": "nope", "dataset": 999999}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"task", "dataset"}
    assert not TrainingJob.objects.exists()


def test_activate_a_version_and_filter_by_state(make_user):
    api = api_for(make_user(Role.OPERATOR))
    v = services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x")
    assert api.post(f"/api/v1/models/versions/{v.pk}/activate/").json()["state"] == "active"
    active = api.get("/api/v1/models/versions/?state=active&task=finance.sentiment").json()["results"]
    assert [row["id"] for row in active] == [v.pk]
    services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x")
    archived = services.model_version_archive(
        version=services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x"))
    assert api.post(f"/api/v1/models/versions/{archived.pk}/activate/").status_code == 409
    assert api.post("/api/v1/models/versions/999999/activate/").status_code == 404
