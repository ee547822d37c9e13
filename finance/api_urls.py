from django.urls import path
from rest_framework.routers import SimpleRouter

from finance import rest

router = SimpleRouter()
router.register("runs", rest.IngestRunViewSet, basename="ingest-run")

urlpatterns = [
    path("articles/", rest.articles_push, name="finance-articles-push"),
    *router.urls,
]
