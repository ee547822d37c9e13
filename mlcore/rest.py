"""JSON API of mlcore for operators' programs: versions, datasets and training jobs (read, start, cancel)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.openapi import ErrorSerializer
from core.roles import Role, api_role_permission
from mlcore import selectors, services
from mlcore.models import Dataset, ModelVersion, Task, TrainingJob

IsOperator = api_role_permission(Role.OPERATOR)
CONFLICT = OpenApiResponse(ErrorSerializer, description="Not in a state that allows this; `detail` says why")


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "task", "scope", "family", "name", "base_spec", "label_map", "metrics", "state",
                  "created_at", "activated_at"]


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "kind", "source_name", "rows_read", "rows_kept", "rows_rejected", "exact_duplicates",
                  "near_duplicates", "split_counts", "labels", "created_at"]


class TrainingJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingJob
        fields = ["id", "task", "scope", "dataset", "params", "state", "progress", "history", "log_tail", "error",
                  "attempts", "max_attempts", "cancel_requested", "worker", "result_version", "created_at",
                  "started_at", "heartbeat_at", "finished_at"]
        read_only_fields = fields


class FinetuneRequestSerializer(serializers.Serializer):
    task = serializers.ChoiceField(choices=[t.value for t in Task])
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
    scope = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    params = serializers.DictField(required=False, default=dict)


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Model versions; filter with ?task=finance.sentiment&state=active."""

    permission_classes = [IsOperator]
    serializer_class = ModelVersionSerializer

    def get_queryset(self):
        qs = ModelVersion.objects.all()
        for field in ("task", "state", "scope"):
            if value := self.request.query_params.get(field):
                qs = qs.filter(**{field: value})
        return qs

    @extend_schema(request=None, responses={200: ModelVersionSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        try:
            version = services.model_version_activate(version=self.get_object())
        except services.RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)


class DatasetViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsOperator]
    serializer_class = DatasetSerializer
    queryset = Dataset.objects.all()


class TrainingJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Training jobs: poll one for progress, start one, cancel one."""

    permission_classes = [IsOperator]
    serializer_class = TrainingJobSerializer

    def get_queryset(self):
        return selectors.jobs_list(state=self.request.query_params.get("state"))

    @extend_schema(request=FinetuneRequestSerializer, responses={201: TrainingJobSerializer})
    def create(self, request, *args, **kwargs):
        form = FinetuneRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            job = services.finetune_start(user=request.user, **form.validated_data)
        except services.RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TrainingJobSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()  # DRF's lookup: an id that is not a number is a 404, not a 500
        try:
            job = services.finetune_cancel(job=job)
        except services.RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(TrainingJobSerializer(job).data)
