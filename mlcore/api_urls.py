from rest_framework.routers import SimpleRouter

from mlcore import rest

router = SimpleRouter()
router.register("versions", rest.ModelVersionViewSet, basename="model-version")
router.register("datasets", rest.DatasetViewSet, basename="dataset")
router.register("jobs", rest.TrainingJobViewSet, basename="training-job")

urlpatterns = router.urls
