from django.urls import path

from mlcore import views

app_name = "mlcore"
urlpatterns = [
    path("", views.index, name="index"),
    path("tasks/<str:task>/", views.task_detail, name="task"),
    path("versions/<int:version_id>/activate/", views.version_activate, name="version_activate"),
    path("versions/<int:version_id>/archive/", views.version_archive, name="version_archive"),
    path("datasets/", views.datasets, name="datasets"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:dataset_id>/rejected.csv", views.dataset_rejected_csv, name="dataset_rejected_csv"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/new/", views.job_new, name="job_new"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/status.json", views.job_status, name="job_status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
]
