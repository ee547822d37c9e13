from django.urls import path

from mlcore import views

app_name = "mlcore"
urlpatterns = [
    path("", views.index, name="index"),
]
