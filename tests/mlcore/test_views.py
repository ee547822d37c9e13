import csv
import io
import json

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from core.roles import Role
from mlcore import services
from mlcore import urls as mlcore_urls
from mlcore.models import Dataset, Family, ModelVersion, Task, TrainingJob
from tests.mlcore.conftest import sentiment_csv

pytestmark = pytest.mark.django_db


def flashes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def version(task=Task.FINANCE_SENTIMENT, **extra):
    family = Family.REGRESSOR if task == Task.ESSAY_SCORE else Family.CLASSIFIER
    return services.model_version_register(task=task, family=family, base_spec="package:minilm", **extra)


def dataset_row(name="news", kind=Dataset.Kind.CLASSIFICATION, **extra):
    """A Dataset row written directly, for pages that only read its fields."""
    fields = {"source_name": f"{name}.csv", "path": "", "rows_read": 10, "rows_kept": 8, "rows_rejected": 2,
              "split_counts": {"train": 6, "validation": 1, "test": 1}, **extra}
    return Dataset.objects.create(name=name, kind=kind, **fields)


@pytest.fixture
def registry(sentiment_dataset):
    """One of each object the mlcore URLs take: a task, a dataset, a ready version and a queued job."""
    ready = version(name="ready one")
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, params={"epochs": 1})
    return {"task": Task.FINANCE_SENTIMENT.value, "dataset": sentiment_dataset.pk, "version": ready.pk, "job": job.pk}


# url name -> (the registry object its URL takes, method, what an operator gets)
ENDPOINTS = {
    "mlcore:index": (None, "get", 200),
    "mlcore:task": ("task", "get", 200),
    "mlcore:version_activate": ("version", "post", 302),
    "mlcore:version_archive": ("version", "post", 302),
    "mlcore:datasets": (None, "get", 200),
    "mlcore:dataset": ("dataset", "get", 200),
    "mlcore:dataset_rejected_csv": ("dataset", "get", 200),
    "mlcore:jobs": (None, "get", 200),
    "mlcore:job_new": (None, "get", 200),
    "mlcore:job": ("job", "get", 200),
    "mlcore:job_status": ("job", "get", 200),
    "mlcore:job_cancel": ("job", "post", 302),
}
POST_ONLY = [name for name, (_, method, _) in ENDPOINTS.items() if method == "post"]
GET_ONLY = ["mlcore:index", "mlcore:task", "mlcore:dataset", "mlcore:dataset_rejected_csv", "mlcore:jobs",
            "mlcore:job", "mlcore:job_status"]


def url_for(name, registry, missing=False):
    key = ENDPOINTS[name][0]
    if key is None:
        return reverse(name)
    value = ("no.such_task" if key == "task" else 999_999) if missing else registry[key]
    return reverse(name, args=[value])


def test_the_permission_table_covers_every_mlcore_url():
    assert {f"mlcore:{pattern.name}" for pattern in mlcore_urls.urlpatterns} == set(ENDPOINTS)


@pytest.mark.parametrize(("name", "role"), [(name, role) for name in ENDPOINTS for role in [*Role, None]])
def test_only_operators_open_mlcore_pages(client, client_with_roles, registry, name, role):
    _, method, operator_status = ENDPOINTS[name]
    url = url_for(name, registry)
    response = getattr(client_with_roles(role) if role else client, method)(url)
    if role is None:
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('login')}?next={url}"
    else:
        assert response.status_code == (operator_status if role == Role.OPERATOR else 403)


def test_a_user_without_a_role_is_refused(client_with_roles, registry):
    client = client_with_roles()
    for name, (_, method, _) in ENDPOINTS.items():
        assert getattr(client, method)(url_for(name, registry)).status_code == 403, name


@pytest.mark.parametrize("name", POST_ONLY)
def test_actions_refuse_get(client_with_roles, registry, name):
    assert client_with_roles(Role.OPERATOR).get(url_for(name, registry)).status_code == 405


@pytest.mark.parametrize("name", GET_ONLY)
def test_read_only_pages_refuse_post(client_with_roles, registry, name):
    assert client_with_roles(Role.OPERATOR).post(url_for(name, registry)).status_code == 405


@pytest.mark.parametrize("name", [name for name, (key, _, _) in ENDPOINTS.items() if key])
def test_unknown_objects_are_404(client_with_roles, registry, name):
    method = ENDPOINTS[name][1]
    response = getattr(client_with_roles(Role.OPERATOR), method)(url_for(name, registry, missing=True))
    assert response.status_code == 404


def test_actions_need_the_csrf_token(make_user, registry):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(Role.OPERATOR))
    assert client.post(reverse("mlcore:version_activate", args=[registry["version"]])).status_code == 403
    assert ModelVersion.objects.get(pk=registry["version"]).state == "ready"


# --- index --------------------------------------------------------------------------------------


def test_index_without_data_says_what_to_do_next(client_with_roles, mlcore_home):
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:index"))
    body = response.content.decode()
    assert "No dataset yet" in body and "Upload a dataset" in body
    assert "No fine-tuning jobs yet" in body
    assert "No active version" in body
    assert [entry["task"] for entry in response.context["tasks"]] == list(Task)


def test_index_shows_active_versions_with_headline_metrics_and_recent_jobs(client_with_roles, sentiment_dataset):
    active = services.model_version_activate(
        version=version(name="news v2", metrics={"accuracy": 0.8125, "macro_f1": 0.7734, "n": 32})
    )
    services.model_version_activate(version=version(task=Task.ESSAY_SCORE, metrics={"qwk": 0.61, "rmse": 0.92}))
    jobs = [TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, progress=10 * i)
            for i in range(7)]
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:index"))
    body = response.content.decode()
    assert f"v{active.pk} news v2" in body
    assert "0.813" in body and "0.773" in body  # accuracy, macro_f1
    assert "0.610" in body and "0.920" in body  # qwk, rmse
    assert [job.pk for job in response.context["recent_jobs"]] == [job.pk for job in reversed(jobs)][:5]
    assert f'href="{reverse("mlcore:job", args=[jobs[-1].pk])}"' in body
    assert f'href="{reverse("mlcore:job", args=[jobs[0].pk])}"' not in body


def test_index_query_count_is_pinned(client_with_roles, sentiment_dataset, django_assert_max_num_queries):
    for task in (Task.FINANCE_SENTIMENT, Task.ESSAY_SCORE):
        for _ in range(3):
            version(task=task)
    for scope in ("assignment:1", "assignment:2", "assignment:3"):
        services.model_version_activate(version=version(task=Task.ESSAY_SCORE, scope=scope))
    for _ in range(10):
        TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset)
    client = client_with_roles(Role.OPERATOR)
    # session, user, roles, active versions, version counts, recent jobs, dataset count
    with django_assert_max_num_queries(7):
        assert client.get(reverse("mlcore:index")).status_code == 200


# --- task page and version actions ----------------------------------------------------------------


def test_task_page_compares_versions_on_the_union_of_their_metrics(client_with_roles, mlcore_home):
    old = version(name="old", metrics={"dataset": "news", "split": "validation", "accuracy": 0.7, "macro_f1": 0.6})
    new = version(name="new", metrics={"dataset": "news2", "split": "test", "accuracy": 0.8, "macro_f1": 0.75,
                                       "epochs_run": 3, "dataset_id": 4, "stopped_early": True})
    bare = version(name="untrained")
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:task", args=["finance.sentiment"]))
    assert response.status_code == 200
    ctx = response.context
    assert ctx["metric_keys"] == ["macro_f1", "accuracy", "epochs_run"]
    rows = {row["version"].pk: row for row in ctx["rows"]}
    assert rows[old.pk]["values"] == [0.6, 0.7, None]
    assert rows[new.pk]["values"] == [0.75, 0.8, 3]
    assert (rows[new.pk]["dataset"], rows[new.pk]["split"]) == ("news2", "test")
    assert rows[bare.pk]["values"] == [None, None, None]
    assert ctx["comparable"] is False
    body = response.content.decode()
    assert "measured on different datasets or splits" in body
    assert "news2 · test" in body
    chart = json.loads(body.split('id="versions-chart-data" type="application/json">')[1].split("</script>")[0])
    assert [trace["name"] for trace in chart["data"]] == ["macro-F1", "accuracy"]
    assert chart["data"][0]["x"] == [f"v{old.pk}", f"v{new.pk}"] and chart["data"][0]["y"] == [0.6, 0.75]
    assert chart["layout"]["barmode"] == "group"
    assert "vendor/plotly.min.js" in body and "cdn" not in body.lower()
    assert f'href="{reverse("mlcore:job_new")}?task=finance.sentiment"' in body


def test_task_page_query_count_is_pinned(client_with_roles, mlcore_home, django_assert_max_num_queries):
    for i in range(15):
        version(metrics={"accuracy": i / 15, "macro_f1": i / 20, "dataset": "news", "split": "validation"})
    client = client_with_roles(Role.OPERATOR)
    with django_assert_max_num_queries(4):
        response = client.get(reverse("mlcore:task", args=["finance.sentiment"]))
    assert len(response.context["rows"]) == 15 and response.context["comparable"] is True


def test_task_page_without_metrics_has_no_chart(client_with_roles, mlcore_home):
    version(name="untrained")
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:task", args=["finance.sentiment"]))
    assert response.context["chart"] is None
    assert "plotly" not in response.content.decode()


def test_task_page_without_versions_says_how_to_get_one(client_with_roles, mlcore_home):
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:task", args=["education.essay_score"]))
    assert "No versions yet" in response.content.decode()


def test_activate_makes_the_version_active_and_flashes(client_with_roles, mlcore_home):
    first, second = version(), version()
    services.model_version_activate(version=first)
    response = client_with_roles(Role.OPERATOR).post(reverse("mlcore:version_activate", args=[second.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("mlcore:task", args=["finance.sentiment"]) + f"#version-{second.pk}"
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("ready", "active")
    assert flashes(response) == [f"Version {second.pk} is now the active model for {Task.FINANCE_SENTIMENT.label}."]


def test_archive_retires_a_ready_version(client_with_roles, mlcore_home):
    ready = version()
    response = client_with_roles(Role.OPERATOR).post(reverse("mlcore:version_archive", args=[ready.pk]))
    ready.refresh_from_db()
    assert ready.state == "archived"
    assert flashes(response) == [f"Version {ready.pk} is archived."]


def test_archiving_the_active_version_flashes_the_error_and_changes_nothing(client_with_roles, mlcore_home):
    active = services.model_version_activate(version=version())
    response = client_with_roles(Role.OPERATOR).post(reverse("mlcore:version_archive", args=[active.pk]), follow=True)
    active.refresh_from_db()
    assert active.state == "active"
    body = response.content.decode()
    assert "The active version cannot be archived: activate another version first." in body
    assert "flash-error" in body


def test_activating_an_archived_version_flashes_the_error(client_with_roles, mlcore_home):
    archived = services.model_version_archive(version=version())
    response = client_with_roles(Role.OPERATOR).post(reverse("mlcore:version_activate", args=[archived.pk]))
    archived.refresh_from_db()
    assert archived.state == "archived"
    assert flashes(response) == ["A archived version cannot be activated; only a ready one can."]


# --- datasets -------------------------------------------------------------------------------------

UPLOAD_CSV = (
    b"text,label\n"
    b"Acme profit rose sharply in the first quarter,positive\n"
    b"Acme profit rose sharply in the first quarter,positive\n"
    b"Globex shares slumped after the profit warning,negative\n"
    b"Initech held its annual board meeting on Monday,neutral\n"
    b"Hooli revenue missed forecasts again,negative,surplus\n"
    b"Umbrella raised its dividend for the tenth year,positive\n"
)


REJECTED = [{"line": i + 2, "reason": f"reason {i}", "text": f'text {i}, with "quotes"'} for i in range(25)]


def upload(client, content, *, filename="news.csv", **fields):
    data = {"name": "news", "kind": "classification", "format": "", "text_column": "text", "label_column": "",
            "target_column": "", **fields, "file": SimpleUploadedFile(filename, content, "text/csv")}
    return client.post(reverse("mlcore:datasets"), data)


def test_upload_creates_a_cleaned_dataset_and_redirects(client_with_roles, mlcore_home):
    client = client_with_roles(Role.OPERATOR)
    response = upload(client, UPLOAD_CSV)
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("mlcore:dataset", args=[dataset.pk])
    assert (dataset.name, dataset.kind, dataset.source_name) == ("news", "classification", "news.csv")
    assert (dataset.rows_read, dataset.rows_kept, dataset.rows_rejected, dataset.exact_duplicates) == (6, 4, 1, 1)
    assert dataset.labels == ["negative", "neutral", "positive"]
    assert sum(dataset.split_counts.values()) == 4
    assert dataset.created_by.groups.get().name == "operator"
    assert flashes(response) == ["Dataset “news” is ready: 4 rows kept, 1 rejected."]
    assert (mlcore_home / dataset.path).exists()


def test_upload_without_a_name_uses_the_file_name(client_with_roles, mlcore_home):
    upload(client_with_roles(Role.OPERATOR), UPLOAD_CSV, filename="q3-headlines.csv", name="")
    assert Dataset.objects.get().name == "q3-headlines"


def test_a_binary_upload_is_refused_with_the_reason(client_with_roles, mlcore_home):
    response = upload(client_with_roles(Role.OPERATOR), b"\x89PNG\r\n\x1a\n\x00\x00", filename="chart.csv")
    assert response.status_code == 400
    assert "chart.csv does not look like a text file (it contains binary data)" in response.content.decode()
    assert not Dataset.objects.exists()
    assert not (mlcore_home / "datasets").exists()


def test_an_upload_over_the_size_limit_is_refused_before_reading(client_with_roles, mlcore_home, monkeypatch):
    monkeypatch.setattr("mlcore.forms.MAX_UPLOAD_BYTES", 100)

    def not_called(**kwargs):
        raise AssertionError("an upload over the limit must not be read")

    monkeypatch.setattr("mlcore.services.dataset_create", not_called)
    response = upload(client_with_roles(Role.OPERATOR), UPLOAD_CSV)
    assert response.status_code == 400
    assert f"news.csv is {len(UPLOAD_CSV)}\xa0bytes; the limit is 100\xa0bytes." in response.content.decode()
    assert not Dataset.objects.exists()


def test_an_invalid_upload_form_is_400(client_with_roles, mlcore_home):
    response = upload(client_with_roles(Role.OPERATOR), UPLOAD_CSV, kind="pictures")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Dataset.objects.exists()


def test_a_missing_label_column_is_a_form_error(client_with_roles, mlcore_home):
    response = upload(client_with_roles(Role.OPERATOR), UPLOAD_CSV, label_column="sentiment")
    assert response.status_code == 400
    assert response.context["form"].non_field_errors()
    assert not Dataset.objects.exists()


def test_datasets_list_shows_counts(client_with_roles, sentiment_dataset):
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:datasets"))
    body = response.content.decode()
    assert "tiny sentiment" in body and "negative, neutral, positive" in body
    counts = sentiment_dataset.split_counts
    assert f"{counts['train']} / {counts['validation']} / {counts['test']}" in body
    assert 'enctype="multipart/form-data"' in body


def test_datasets_list_query_count_is_pinned(client_with_roles, make_user, mlcore_home,
                                             django_assert_max_num_queries):
    for i in range(12):
        dataset_row(name=f"set {i}", created_by=make_user(), rejected=REJECTED)
    client = client_with_roles(Role.OPERATOR)
    with django_assert_max_num_queries(4):
        response = client.get(reverse("mlcore:datasets"))
    assert len(response.context["datasets"]) == 12


def test_datasets_page_without_datasets_says_what_to_do(client_with_roles, mlcore_home):
    body = client_with_roles(Role.OPERATOR).get(reverse("mlcore:datasets")).content.decode()
    assert "No dataset yet" in body and "finance sentiment classifier" in body


def test_dataset_page_shows_the_first_20_rejected_rows(client_with_roles, mlcore_home):
    dataset = dataset_row(rows_rejected=25, rejected=REJECTED)
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:dataset", args=[dataset.pk]))
    assert response.context["rejected"] == REJECTED[:20]
    body = response.content.decode()
    assert "reason 19" in body and "reason 20" not in body
    assert "The first 20 of 25 rejected rows." in body
    assert reverse("mlcore:dataset_rejected_csv", args=[dataset.pk]) in body


def test_rejected_rows_download_as_csv(client_with_roles, mlcore_home):
    dataset = dataset_row(rows_rejected=25, rejected=REJECTED)
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:dataset_rejected_csv", args=[dataset.pk]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="dataset-{dataset.pk}-rejected.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["line", "reason", "text"]
    assert rows[1:] == [[str(r["line"]), r["reason"], r["text"]] for r in REJECTED]


def test_rejected_rows_of_a_real_upload_download(client_with_roles, mlcore_home):
    client = client_with_roles(Role.OPERATOR)
    upload(client, UPLOAD_CSV)
    dataset = Dataset.objects.get()
    rows = list(csv.reader(io.StringIO(
        client.get(reverse("mlcore:dataset_rejected_csv", args=[dataset.pk])).content.decode()
    )))
    assert rows == [["line", "reason", "text"],
                    ["6", "has 3 fields, the header has 2", "Hooli revenue missed forecasts again,negative,surplus"]]


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_list_paginates_filters_and_pins_queries(client_with_roles, mlcore_home, django_assert_max_num_queries):
    datasets = [dataset_row(name=f"set {i}") for i in range(3)]
    for i in range(30):
        TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=datasets[i % 3],
                                   state="running" if i % 5 == 0 else "queued", progress=i)
    client = client_with_roles(Role.OPERATOR)
    # session, user, roles, count, page
    with django_assert_max_num_queries(5):
        response = client.get(reverse("mlcore:jobs"))
    assert len(response.context["page"].object_list) == 25
    assert "Page 1 of 2 (30 jobs)" in response.content.decode()
    with django_assert_max_num_queries(5):
        response = client.get(reverse("mlcore:jobs"), {"page": 2})
    assert len(response.context["page"].object_list) == 5
    response = client.get(reverse("mlcore:jobs"), {"state": "running"})
    assert {job.state for job in response.context["page"].object_list} == {"running"}
    assert response.context["page"].paginator.count == 6
    response = client.get(reverse("mlcore:jobs"), {"state": "bogus"})
    assert response.status_code == 200 and response.context["page"].paginator.count == 30


def test_jobs_list_filtered_to_nothing_says_so(client_with_roles, mlcore_home):
    body = client_with_roles(Role.OPERATOR).get(reverse("mlcore:jobs"), {"state": "failed"}).content.decode()
    assert "No job in this state" in body


FORM = {"task": "finance.sentiment", "scope": "", "epochs": "2", "batch_size": "8", "learning_rate": "0.0001",
        "max_length": "64", "patience": "1", "seed": "7"}


def test_new_job_form_preselects_the_task(client_with_roles, sentiment_dataset):
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job_new"), {"task": "education.essay_score"})
    form = response.context["form"]
    assert form["task"].value() == "education.essay_score"
    assert [value for value, _ in form.fields["task"].choices] == ["finance.sentiment", "education.essay_score"]
    assert '<option value="education.essay_score" selected>' in response.content.decode()


def test_new_job_page_without_datasets_sends_to_upload(client_with_roles, mlcore_home):
    body = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job_new")).content.decode()
    assert "No dataset yet" in body and reverse("mlcore:datasets") + "#upload" in body


def test_the_form_queues_a_job_with_its_params(client_with_roles, sentiment_dataset,
                                               django_capture_on_commit_callbacks):
    client = client_with_roles(Role.OPERATOR)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("mlcore:job_new"), {**FORM, "dataset": sentiment_dataset.pk,
                                                           "scope": "desk:fx"})
    job = TrainingJob.objects.get()
    assert len(callbacks) == 1
    assert response.status_code == 302 and response["Location"] == reverse("mlcore:job", args=[job.pk])
    assert (job.state, job.task, job.scope, job.dataset_id) == ("queued", "finance.sentiment", "desk:fx",
                                                                sentiment_dataset.pk)
    assert job.params == {"epochs": 2, "batch_size": 8, "learning_rate": 0.0001, "max_length": 64, "patience": 1,
                          "seed": 7}
    assert job.created_by.groups.get().name == "operator"
    assert flashes(response) == [f"Job {job.pk} is queued; a worker on the ml queue will pick it up."]


@pytest.mark.parametrize(("field", "value"), [
    ("epochs", "0"), ("epochs", "51"), ("batch_size", "0"), ("learning_rate", "0"), ("learning_rate", "0.02"),
    ("max_length", "8"), ("patience", "0"), ("task", "education.embed"), ("dataset", "999999"),
])
def test_invalid_form_values_queue_nothing(client_with_roles, sentiment_dataset, django_capture_on_commit_callbacks,
                                           field, value):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_with_roles(Role.OPERATOR).post(
            reverse("mlcore:job_new"), {**FORM, "dataset": sentiment_dataset.pk, field: value}
        )
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not TrainingJob.objects.exists() and callbacks == []


def test_a_dataset_of_the_wrong_kind_is_a_form_error(client_with_roles, sentiment_dataset,
                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_with_roles(Role.OPERATOR).post(
            reverse("mlcore:job_new"), {**FORM, "task": "education.essay_score", "dataset": sentiment_dataset.pk}
        )
    assert response.status_code == 400
    assert "trains on a text with a number dataset" in response.content.decode()
    assert not TrainingJob.objects.exists() and callbacks == []


HISTORY = [
    {"step": 1, "epoch": 1, "loss": 1.1}, {"step": 2, "epoch": 1, "loss": 0.9},
    {"epoch": 1, "train_loss": 1.0, "seconds": 1.5, "val_accuracy": 0.5, "val_macro_f1": 0.4, "val_n": 6},
    {"step": 3, "epoch": 2, "loss": 0.7}, {"step": 4, "epoch": 2, "loss": 0.6},
    {"epoch": 2, "train_loss": 0.65, "seconds": 1.4, "val_accuracy": 0.75, "val_macro_f1": 0.7, "val_n": 6},
]


def test_the_job_page_renders_the_live_values_without_javascript(client_with_roles, sentiment_dataset):
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, state="running",
                                     progress=42.4, attempts=1, worker="ml@box", history=HISTORY,
                                     log_tail="12:00:01 epoch 1: train_loss=1.0\n", params={"epochs": 2})
    body = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job", args=[job.pk])).content.decode()
    assert '<progress id="job-progress" max="100" value="42.4"' in body
    assert 'id="job-progress-text">42</span>%' in body
    assert 'aria-live="polite"' in body
    assert "ml@box" in body and "12:00:01 epoch 1: train_loss=1.0" in body
    assert 'class="badge badge-run">running</span>' in body
    assert reverse("mlcore:job_cancel", args=[job.pk]) in body and 'id="job-cancel" hidden' not in body
    assert '<th scope="row" class="num">2</th><td class="num">0.6500</td>' in body
    assert f'data-status-url="{reverse("mlcore:job_status", args=[job.pk])}"' in body
    assert "mlcore/job.js" in body and "vendor/plotly.min.js" in body


def test_a_finished_job_page_hides_cancel_and_links_its_version(client_with_roles, sentiment_dataset):
    result = version()
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, state="failed",
                                     error="RuntimeError: out of memory", result_version=result)
    body = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job", args=[job.pk])).content.decode()
    assert 'id="job-cancel" hidden' in body
    assert "RuntimeError: out of memory" in body
    assert f'href="{reverse("mlcore:task", args=["finance.sentiment"])}#version-{result.pk}"' in body
    assert "No training steps reported yet." in body


def test_status_json_has_what_the_page_polls(client_with_roles, sentiment_dataset):
    result = version()
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, state="succeeded",
                                     progress=100, attempts=1, history=HISTORY, log_tail="done\n",
                                     result_version=result)
    response = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job_status", args=[job.pk]))
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    status = response.json()
    assert {"state", "progress", "attempts", "log_tail", "error", "result_version_url", "chart"} <= set(status)
    assert "history" not in status  # the page draws the chart and the epochs table; the raw history is not sent
    assert (status["state"], status["active"], status["progress"], status["attempts"]) == ("succeeded", False, 100, 1)
    assert (status["log_tail"], status["error"]) == ("done\n", "")
    assert status["result_version_url"] == reverse("mlcore:task", args=["finance.sentiment"]) + f"#version-{result.pk}"
    loss, score = status["chart"]["data"]
    assert (loss["x"], loss["y"]) == ([1, 2, 3, 4], [1.1, 0.9, 0.7, 0.6])
    assert (score["x"], score["y"], score["yaxis"]) == ([2, 4], [0.4, 0.7], "y2")
    assert status["epoch_keys"] == ["train_loss", "seconds", "val_accuracy", "val_macro_f1", "val_n"]


def test_a_long_jobs_loss_line_is_averaged_down_for_the_page(client_with_roles, sentiment_dataset):
    from mlcore import selectors

    steps = [{"step": 5 * i, "epoch": 1 + i // 500, "loss": float(i % 2)} for i in range(1, 1001)]  # 1,000 reports
    history = [*steps[:500], {"epoch": 1, "train_loss": 0.5, "val_macro_f1": 0.6}, *steps[500:]]
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, state="running",
                                     history=history)
    status = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job_status", args=[job.pk])).json()
    loss, score = status["chart"]["data"]
    assert len(loss["x"]) == 334 <= selectors.CHART_MAX_POINTS  # runs of 3 reports (1,000 / 400, rounded up)
    assert loss["x"][:2] == [15, 30] and loss["x"][-1] == 5000  # each run at its last step, the last step kept
    assert loss["y"][:2] == [pytest.approx(2 / 3), pytest.approx(1 / 3)]  # losses 1, 0, 1 then 0, 1, 0
    assert (score["x"], score["y"]) == ([2500], [0.6])  # the epoch marker stays at its own step
    short = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, history=steps[:400])
    status = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job_status", args=[short.pk])).json()
    assert status["chart"]["data"][0]["x"] == [5 * i for i in range(1, 401)]  # up to 400 reports: drawn as they are


def test_status_json_of_a_queued_regressor_job(client_with_roles, mlcore_home):
    job = TrainingJob.objects.create(task=Task.ESSAY_SCORE, dataset=dataset_row(kind="regression"),
                                     history=[{"step": 1, "epoch": 1, "loss": 2.0},
                                              {"epoch": 1, "train_loss": 2.0, "val_rmse": 1.2, "val_qwk": 0.3}])
    status = client_with_roles(Role.OPERATOR).get(reverse("mlcore:job_status", args=[job.pk])).json()
    assert (status["state"], status["active"], status["result_version_url"]) == ("queued", True, None)
    assert status["chart"]["data"][1]["name"] == "val. QWK" and status["chart"]["data"][1]["y"] == [0.3]


def test_cancel_of_a_queued_job_cancels_it(client_with_roles, registry):
    client = client_with_roles(Role.OPERATOR)
    response = client.post(reverse("mlcore:job_cancel", args=[registry["job"]]))
    job = TrainingJob.objects.get(pk=registry["job"])
    assert job.state == "cancelled" and job.finished_at is not None
    assert response["Location"] == reverse("mlcore:job", args=[job.pk])
    assert flashes(response) == [f"Job {job.pk} is cancelled."]
    response = client.post(reverse("mlcore:job_cancel", args=[job.pk]))
    assert flashes(response)[-1] == "This job has already cancelled."


def test_cancel_of_a_running_job_asks_it_to_stop(client_with_roles, sentiment_dataset):
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=sentiment_dataset, state="running")
    response = client_with_roles(Role.OPERATOR).post(reverse("mlcore:job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert (job.state, job.cancel_requested) == ("running", True)
    assert flashes(response) == [f"Job {job.pk} will stop at its next training step."]


def test_a_real_upload_then_fine_tune_round_trip(client_with_roles, mlcore_home, django_capture_on_commit_callbacks):
    client = client_with_roles(Role.OPERATOR)
    upload(client, sentiment_csv(), name="headlines")
    dataset = Dataset.objects.get(name="headlines")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("mlcore:job_new"), {**FORM, "dataset": dataset.pk}, follow=True)
    assert response.status_code == 200
    assert response.context["job"].dataset == dataset
