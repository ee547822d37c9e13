from django.urls import path

from entertainment import views

app_name = "entertainment"
urlpatterns = [
    path("", views.index, name="index"),
]
