"""JSON API of the story studio for writers' programs: worlds, stories, generations (start, poll, cancel) and
dialogue-tree exports. Every lookup is by owner, so another writer's object is a 404."""

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import Role, api_role_permission
from entertainment import exports, generation, selectors, services
from entertainment.models import DialogueNode, GenerationJob, Project, Story, StorySegment

IsWriter = api_role_permission(Role.WRITER)


def _detail(message: str, code: int) -> Response:
    return Response({"detail": message}, status=code)


def _messages(exc) -> str:
    return " ".join(exc.messages)


# Serializers ----------------------------------------------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    stories = serializers.IntegerField(source="n_stories", read_only=True)
    characters = serializers.IntegerField(source="n_characters", read_only=True)
    lore_entries = serializers.IntegerField(source="n_lore", read_only=True)
    dialogue_trees = serializers.IntegerField(source="n_trees", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "title", "description", "created", "stories", "characters", "lore_entries", "dialogue_trees"]
        read_only_fields = fields


class StorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Story
        fields = ["id", "project", "title", "genre", "premise", "memory", "authors_note", "created", "updated"]
        read_only_fields = fields


class StoryCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    genre = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    premise = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    memory = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="",
                                   help_text="Always at the top of what the model reads")
    authors_note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="",
                                         help_text="Inserted a few lines before the end of the context")


class SegmentSerializer(serializers.ModelSerializer):
    text = serializers.CharField(read_only=True, help_text="The alternative shown (active)")
    alternatives = serializers.IntegerField(source="n_alternatives", read_only=True)
    shown = serializers.IntegerField(read_only=True, help_text="Which alternative is shown, counted from 1")
    source = serializers.SerializerMethodField()

    class Meta:
        model = StorySegment
        fields = ["id", "position", "text", "source", "alternatives", "shown"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_source(self, segment) -> str:
        return segment.active_alternative.source if segment.active_alternative_id else ""


class StoryDetailSerializer(StorySerializer):
    segments = serializers.SerializerMethodField()

    class Meta(StorySerializer.Meta):
        fields = [*StorySerializer.Meta.fields, "segments"]
        read_only_fields = fields

    @extend_schema_field(SegmentSerializer(many=True))
    def get_segments(self, story) -> list:
        return SegmentSerializer(selectors.story_segments(story=story), many=True).data


class SamplingSerializer(serializers.Serializer):
    """The page's sampler controls; out-of-range values are refused with the field's message."""

    preset = serializers.ChoiceField(choices=list(generation.PRESETS), default="balanced")
    max_new_tokens = serializers.IntegerField(min_value=1, max_value=generation.MAX_NEW_TOKENS, default=120)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = serializers.FloatField(min_value=0.05, max_value=1, required=False, allow_null=True)
    top_k = serializers.IntegerField(min_value=0, max_value=200, required=False, allow_null=True)
    repetition_penalty = serializers.FloatField(min_value=1, max_value=2, required=False, allow_null=True)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True,
                                    help_text="Absent or null: a random seed")
    stop = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list,
                                 max_length=generation.MAX_STOP_STRINGS, help_text="Stop strings")


class StoryGenerateSerializer(SamplingSerializer):
    mode = serializers.ChoiceField(choices=["continue", "regenerate"],
                                   help_text="continue: a new segment; regenerate: another version of the last one")


class DialogueGenerateSerializer(SamplingSerializer):
    max_new_tokens = serializers.IntegerField(min_value=1, max_value=generation.MAX_DIALOGUE_TOKENS, default=60,
                                              help_text="Per reply")
    character = serializers.IntegerField(help_text="The id of a character of the tree's world")
    player_line = serializers.CharField(max_length=1000)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None,
                                      help_text="The id of the line the exchange follows; null: the latest line")
    count = serializers.IntegerField(min_value=1, max_value=generation.MAX_CANDIDATES, default=3)

    def validate_character(self, value):
        character = self.context["tree"].project.characters.filter(pk=value).first()
        if character is None:
            raise serializers.ValidationError("There is no such character in this tree's world.")
        return character

    def validate_parent(self, value):
        if value is None:
            return None
        node = self.context["tree"].nodes.filter(pk=value).first()
        if node is None:
            raise serializers.ValidationError("That line is not in this tree.")
        return node


class ContextPartSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["persona", "memory", "lore", "authors_note", "recent_text"])
    tokens = serializers.IntegerField()
    included = serializers.BooleanField()
    reason = serializers.CharField(help_text="Why it was left out or trimmed")
    trigger = serializers.CharField(help_text="For lore: the key that matched, and where")
    depth = serializers.IntegerField(allow_null=True, help_text="For lore: 0 = the recent text, n = n cascade steps")


class JobSerializer(serializers.ModelSerializer):
    context_report = ContextPartSerializer(many=True, read_only=True)
    active = serializers.BooleanField(read_only=True)
    prompt_tokens = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = ["id", "kind", "mode", "state", "active", "story", "tree", "character", "parent_node",
                  "player_line", "parameters", "text", "candidates", "tokens", "tokens_per_second", "error",
                  "prompt_tokens", "context_report", "created", "started", "heartbeat", "finished"]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_prompt_tokens(self, job) -> int | None:
        return job.context.get("prompt_tokens")


class CandidateAcceptSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, help_text="Which candidate reply (0-based, as in `candidates`)")
    text = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="",
                                 help_text="Your edit of the reply; blank: the reply as the model wrote it")


class DialogueNodeSerializer(serializers.ModelSerializer):
    speaker_name = serializers.CharField(read_only=True, help_text="The character's name, or Player")

    class Meta:
        model = DialogueNode
        fields = ["id", "tree", "speaker", "speaker_name", "text", "is_root", "created"]
        read_only_fields = fields


# Views ------------------------------------------------------------------------------------------------


class ProjectList(generics.ListAPIView):
    """Your worlds, newest first, with how many stories, characters, lore entries and trees each holds."""

    permission_classes = [IsWriter]
    serializer_class = ProjectSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        return selectors.projects_for(user=self.request.user).order_by("-created", "-id")


class ProjectStories(generics.ListCreateAPIView):
    """The stories of one of your worlds (GET), or a new story in it (POST)."""

    permission_classes = [IsWriter]
    serializer_class = StorySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Story.objects.none()
        return selectors.project_get(user=self.request.user, pk=self.kwargs["pk"]).stories.order_by("-updated", "-id")

    @extend_schema(request=StoryCreateSerializer, responses={201: StoryDetailSerializer})
    def post(self, request, pk):
        project = selectors.project_get(user=request.user, pk=pk)
        form = StoryCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            story = services.story_save(project=project, **form.validated_data)
        except services.StudioError as exc:
            return _detail(_messages(exc), status.HTTP_400_BAD_REQUEST)
        return Response(StoryDetailSerializer(story).data, status=status.HTTP_201_CREATED)


class StoryDetail(generics.RetrieveAPIView):
    """A story with its segments in order, each with the text of the alternative shown."""

    permission_classes = [IsWriter]
    serializer_class = StoryDetailSerializer

    def get_object(self):
        return selectors.story_get(user=self.request.user, pk=self.kwargs["pk"])


REFUSALS = {400: OpenApiResponse(description="Bad parameters: the fields and what is wrong"),
            409: OpenApiResponse(description="A generation is already running for this story or tree"),
            429: OpenApiResponse(description="Too many generations this minute")}


def _start(start, **kwargs) -> Response:
    try:
        job = start(**kwargs)
    except generation.GenerationRefused as exc:
        return _detail(_messages(exc), exc.status)
    except services.StudioError as exc:
        return _detail(_messages(exc), status.HTTP_400_BAD_REQUEST)
    return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class StoryGenerate(APIView):
    permission_classes = [IsWriter]

    @extend_schema(request=StoryGenerateSerializer, responses={201: JobSerializer, **REFUSALS})
    def post(self, request, pk):
        """Queue a continuation or a regeneration; poll the job it returns."""
        story = selectors.story_get(user=request.user, pk=pk)
        form = StoryGenerateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        params = dict(form.validated_data)
        mode = params.pop("mode")
        return _start(generation.story_generate, owner=request.user, story=story, mode=mode, params=params)


class TreeGenerate(APIView):
    permission_classes = [IsWriter]

    @extend_schema(request=DialogueGenerateSerializer, responses={201: JobSerializer, **REFUSALS})
    def post(self, request, pk):
        """Queue `count` candidate replies of a character to the player's line; poll the job it returns."""
        tree = selectors.tree_get(user=request.user, pk=pk)
        form = DialogueGenerateSerializer(data=request.data, context={"tree": tree})
        form.is_valid(raise_exception=True)
        params = dict(form.validated_data)
        return _start(generation.dialogue_generate, owner=request.user, tree=tree,
                      character=params.pop("character"), player_line=params.pop("player_line"),
                      parent=params.pop("parent"), count=params.pop("count"), params=params)


class JobDetail(generics.RetrieveAPIView):
    """A generation: its state, the text so far, tokens/s, candidate replies, error and context report."""

    permission_classes = [IsWriter]
    serializer_class = JobSerializer

    def get_object(self):
        return selectors.job_get(user=self.request.user, pk=self.kwargs["pk"])


class JobCancel(APIView):
    permission_classes = [IsWriter]

    @extend_schema(request=None, responses={200: JobSerializer,
                                            409: OpenApiResponse(description="The generation had already ended")})
    def post(self, request, pk):
        """Stop a queued or running generation; the worker stops at its next piece."""
        job = selectors.job_get(user=request.user, pk=pk)
        if not generation.job_cancel(job=job):
            job.refresh_from_db()
            return _detail(f"That generation had already ended ({job.state}).", status.HTTP_409_CONFLICT)
        job.refresh_from_db()
        return Response(JobSerializer(job).data)


class JobAccept(APIView):
    permission_classes = [IsWriter]

    @extend_schema(request=CandidateAcceptSerializer, responses={
        201: DialogueNodeSerializer,
        400: OpenApiResponse(description="Not a finished dialogue job, no such reply, a reply of this job is in "
                                         "the tree already, or the edited text is not usable")})
    def post(self, request, pk):
        """Put the player's line and one candidate reply (as written, or your edit) into the job's tree;
        returns the reply's node."""
        job = selectors.job_get(user=request.user, pk=pk)
        form = CandidateAcceptSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            node = generation.candidate_accept(job=job, index=form.validated_data["index"],
                                               text=form.validated_data["text"] or None)
        except services.StudioError as exc:
            return _detail(_messages(exc), getattr(exc, "status", status.HTTP_400_BAD_REQUEST))
        return Response(DialogueNodeSerializer(node).data, status=status.HTTP_201_CREATED)


class TreeExport(APIView):
    permission_classes = [IsWriter]

    @extend_schema(
        parameters=[OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=list(exports.EXPORTS))],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request, pk, fmt):
        """A dialogue tree as a file a game engine loads: json, ink (Ink) or yarn (Yarn Spinner)."""
        if fmt not in exports.EXPORTS:
            raise Http404(f"No export format “{fmt}”; use json, ink or yarn.")
        tree = selectors.tree_get(user=request.user, pk=pk)
        render_tree, content_type, ext = exports.EXPORTS[fmt]
        response = HttpResponse(render_tree(tree), content_type=f"{content_type}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{exports.tree_filename(tree)}.{ext}"'
        return response
