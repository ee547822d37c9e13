"""Operator pages: tasks and their versions, datasets, fine-tuning jobs with live progress."""

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required
from core.spreadsheets import spreadsheet_safe
from mlcore import selectors, services
from mlcore.data import DataError
from mlcore.forms import DatasetUploadForm, FinetuneForm
from mlcore.models import Dataset, ModelVersion, Task, TrainingJob

JOBS_PER_PAGE = 25
REJECTED_SHOWN = 20


def _version_url(version_id: int, task: str) -> str:
    return reverse("mlcore:task", args=[task]) + f"#version-{version_id}"


@role_required(Role.OPERATOR)
@require_GET
def index(request):
    return render(request, "mlcore/index.html", selectors.operator_overview())


@role_required(Role.OPERATOR)
@require_GET
def task_detail(request, task):
    if task not in Task.values:
        raise Http404("No such task.")
    return render(request, "mlcore/task.html", selectors.task_versions(task=task))


def _version_change(request, version_id, *, action, done):
    """Run a registry action on one version, flash its outcome (or the refusal) and go back to the version's row."""
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        action(version=version)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done(version))
    return redirect(_version_url(version.pk, version.task))


@role_required(Role.OPERATOR)
@require_POST
def version_activate(request, version_id):
    return _version_change(
        request, version_id, action=services.model_version_activate,
        done=lambda version: f"Version {version.pk} is now the active model for {version.get_task_display()}.",
    )


@role_required(Role.OPERATOR)
@require_POST
def version_archive(request, version_id):
    return _version_change(request, version_id, action=services.model_version_archive,
                           done=lambda version: f"Version {version.pk} is archived.")


@role_required(Role.OPERATOR)
@require_http_methods(["GET", "POST"])
def datasets(request):
    form = DatasetUploadForm(request.POST, request.FILES) if request.method == "POST" else DatasetUploadForm()
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = services.dataset_create(
                name=data["name"], kind=data["kind"], data=data["file"].read(), filename=data["file"].name,
                fmt=data["format"], user=request.user, text_column=data["text_column"],
                label_column=data["label_column"], target_column=data["target_column"],
            )
        except DataError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request, f"Dataset “{dataset.name}” is ready: {dataset.rows_kept} rows kept, "
                         f"{dataset.rows_rejected} rejected.",
            )
            return redirect("mlcore:dataset", dataset_id=dataset.pk)
    status = 400 if form.is_bound else 200
    return render(request, "mlcore/datasets.html",
                  {"datasets": selectors.datasets_overview(), "form": form}, status=status)


@role_required(Role.OPERATOR)
@require_GET
def dataset_detail(request, dataset_id):
    dataset = get_object_or_404(Dataset, pk=dataset_id)
    return render(request, "mlcore/dataset.html", {
        "dataset": dataset, "rejected": selectors.dataset_rejected(dataset=dataset, limit=REJECTED_SHOWN),
        "rejected_shown": REJECTED_SHOWN,
    })


@role_required(Role.OPERATOR)
@require_GET
def dataset_rejected_csv(request, dataset_id):
    dataset = get_object_or_404(Dataset.objects.only("pk", "rejected"), pk=dataset_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-rejected.csv"'
    writer = csv.writer(response)
    writer.writerow(["line", "reason", "text"])
    for row in selectors.dataset_rejected(dataset=dataset):
        writer.writerow([row.get("line"), row.get("reason"), spreadsheet_safe(row.get("text"))])
    return response


@role_required(Role.OPERATOR)
@require_GET
def jobs(request):
    state = request.GET.get("state", "")
    if state not in TrainingJob.State.values:
        state = ""
    page = Paginator(selectors.jobs_overview(state=state or None), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "mlcore/jobs.html", {"page": page, "state": state, "states": TrainingJob.State.choices})


@role_required(Role.OPERATOR)
@require_http_methods(["GET", "POST"])
def job_new(request):
    if request.method == "POST":
        form = FinetuneForm(request.POST)
        if form.is_valid():
            try:
                job = services.finetune_start(
                    task=form.cleaned_data["task"], dataset=form.cleaned_data["dataset"], params=form.params,
                    scope=form.cleaned_data["scope"], user=request.user,
                )
            except services.RegistryError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, f"Job {job.pk} is queued; a worker on the ml queue will pick it up.")
                return redirect("mlcore:job", job_id=job.pk)
        return render(request, "mlcore/job_new.html", {"form": form}, status=400)
    form = FinetuneForm(initial={"task": request.GET.get("task"), "dataset": request.GET.get("dataset")})
    return render(request, "mlcore/job_new.html", {"form": form})


@role_required(Role.OPERATOR)
@require_GET
def job_detail(request, job_id):
    job = get_object_or_404(selectors.jobs_list().defer("dataset__rejected"), pk=job_id)
    return render(request, "mlcore/job.html", {"job": job, "live": selectors.job_progress(job=job)})


@role_required(Role.OPERATOR)
@require_GET
@never_cache
def job_status(request, job_id):
    job = get_object_or_404(TrainingJob, pk=job_id)
    status = selectors.job_progress(job=job)
    status["result_version_url"] = _version_url(job.result_version_id, job.task) if job.result_version_id else None
    return JsonResponse(status)


@role_required(Role.OPERATOR)
@require_POST
def job_cancel(request, job_id):
    job = get_object_or_404(TrainingJob, pk=job_id)
    try:
        job = services.finetune_cancel(job=job)
    except services.RegistryError as error:
        messages.error(request, str(error))
    else:
        if job.state == TrainingJob.State.CANCELLED:
            messages.success(request, f"Job {job.pk} is cancelled.")
        else:
            messages.success(request, f"Job {job.pk} will stop at its next training step.")
    return redirect("mlcore:job", job_id=job.pk)
