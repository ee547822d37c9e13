"""JSON API of finance for analysts' programs: push articles, read the record of each import."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from core.roles import Role, api_role_permission
from finance import services
from finance.models import IngestRun
from mlcore.data import DataError

IsAnalyst = api_role_permission(Role.ANALYST)
MAX_ARTICLES = 1000


class PushedArticleSerializer(serializers.Serializer):
    # Loose on purpose: articles_ingest checks each article and reports the ones it refuses with a reason.
    title = serializers.CharField(allow_blank=True, trim_whitespace=False)
    body = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    url = serializers.CharField(allow_blank=True, required=False, default="")
    published_at = serializers.CharField(allow_blank=True, help_text="ISO 8601, RFC 822 or a date")


class ArticlePushSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=200, help_text="A new name adds a source")
    timezone = serializers.CharField(default="UTC", help_text="Zone of published times without one, e.g. Europe/London")
    articles = serializers.ListField(child=PushedArticleSerializer(), allow_empty=False,
                                     help_text=f"At most {MAX_ARTICLES:,} per request")

    def to_internal_value(self, data):
        # Counted before the articles are read one by one.
        articles = data.get("articles") if isinstance(data, dict) else None
        if isinstance(articles, list) and len(articles) > MAX_ARTICLES:
            raise serializers.ValidationError({"articles": [
                f"At most {MAX_ARTICLES:,} articles per request; this one has {len(articles):,}. "
                "Send them in several requests."]})
        return super().to_internal_value(data)

    def validate_timezone(self, value):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise serializers.ValidationError(f"“{value}” is not a time zone; use a name such as UTC or "
                                              "America/New_York.") from exc


class IngestProblemSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    title = serializers.CharField()
    reason = serializers.CharField()
    kind = serializers.ChoiceField(choices=["duplicate", "rejected"])


class PushResultSerializer(serializers.Serializer):
    run = serializers.IntegerField(help_text="The id of the import's record under /api/v1/finance/runs/")
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    clustered = serializers.IntegerField(help_text="Accepted articles that are syndicated copies of an earlier story")
    problems = IngestProblemSerializer(many=True)


class IngestRunSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")

    class Meta:
        model = IngestRun
        fields = ["id", "source", "via", "filename", "created_at", "rows", "accepted", "duplicates", "rejected",
                  "clustered"]
        read_only_fields = fields


class IngestRunDetailSerializer(IngestRunSerializer):
    problems = IngestProblemSerializer(many=True)

    class Meta(IngestRunSerializer.Meta):
        fields = [*IngestRunSerializer.Meta.fields, "problems"]
        read_only_fields = fields


@extend_schema(request=ArticlePushSerializer, responses={201: PushResultSerializer})
@api_view(["POST"])
@permission_classes([IsAnalyst])
def articles_push(request):
    """Add articles to a source: each is checked, stored once, tagged with tickers and queued for scoring.

    The response lists the articles that were duplicates or refused, with their place in the list and why.
    """
    form = ArticlePushSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    articles = [dict(article) for article in form.validated_data["articles"]]
    try:
        run = services.articles_push(source_name=form.validated_data["source"], user=request.user,
                                     articles=articles, default_tz=form.validated_data["timezone"])
    except DataError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    data = {"run": run.pk, "accepted": run.accepted, "duplicates": run.duplicates, "rejected": run.rejected,
            "clustered": run.clustered, "problems": run.problems}
    return Response(PushResultSerializer(data).data, status=status.HTTP_201_CREATED)


class IngestRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Your imports, newest first: CSV uploads and API pushes, with their counts (and problems, one by one)."""

    permission_classes = [IsAnalyst]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return IngestRun.objects.none()
        runs = IngestRun.objects.filter(user=self.request.user).select_related("source")
        return runs if self.action == "retrieve" else runs.defer("problems")

    def get_serializer_class(self):
        return IngestRunDetailSerializer if self.action == "retrieve" else IngestRunSerializer
