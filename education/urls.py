from django.urls import include, path

from education import tutor_urls, views

app_name = "education"
urlpatterns = [
    path("", views.index, name="index"),
    path("tutor/", include(tutor_urls)),
]
