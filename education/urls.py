from django.urls import include, path

from education import tutor_urls, views

app_name = "education"
urlpatterns = [
    path("", views.index, name="index"),
    path("courses/<int:course_id>/", views.course_detail, name="course"),
    path("courses/<int:course_id>/assignments/new/", views.assignment_new, name="assignment_new"),
    path("assignments/<int:assignment_id>/", views.assignment_detail, name="assignment"),
    path("assignments/<int:assignment_id>/edit/", views.assignment_edit, name="assignment_edit"),
    path("assignments/<int:assignment_id>/grading/", views.grading, name="grading"),
    path("assignments/<int:assignment_id>/calibrate/", views.calibrate, name="calibrate"),
    path("grades/<int:grade_id>/override/", views.grade_override, name="grade_override"),
    path("essays/<int:essay_id>/", views.essay_detail, name="essay"),
    path("tutor/", include(tutor_urls)),
]
