"""Admin for courses, assignments, essays and grades."""

from django.contrib import admin

from education.models import Assignment, Calibration, Course, Essay, EssayVersion, Grade, OverrideLog


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ["title", "teacher", "created"]
    search_fields = ["title", "teacher__username"]
    filter_horizontal = ["students"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["title", "course", "score_min", "score_max", "created"]
    list_select_related = ["course"]
    search_fields = ["title", "course__title"]


class EssayVersionInline(admin.TabularInline):
    model = EssayVersion
    fields = ["number", "submitted", "grading_state", "grading_attempts"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Essay)
class EssayAdmin(admin.ModelAdmin):
    list_display = ["student", "assignment", "updated"]
    list_select_related = ["student", "assignment"]
    search_fields = ["student__username", "assignment__title"]
    inlines = [EssayVersionInline]


class OverrideLogInline(admin.TabularInline):
    model = OverrideLog
    fields = ["created", "teacher", "auto_score", "old_score", "new_score", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Grade)
class GradeAdmin(admin.ModelAdmin):
    list_display = ["version", "score", "teacher_score", "confidence", "needs_review", "scorer"]
    list_filter = ["needs_review", "scorer"]
    list_select_related = ["version__essay__student", "version__essay__assignment"]
    readonly_fields = ["version", "model_version", "calibration", "duplicate_of", "overridden_by", "overridden_at"]
    inlines = [OverrideLogInline]


@admin.register(Calibration)
class CalibrationAdmin(admin.ModelAdmin):
    list_display = ["assignment", "state", "n_graded", "qwk", "scorer", "created", "finished"]
    list_filter = ["state", "scorer"]
    # The fitted model is summarised, not shown: with a kernel part it holds every graded essay's row.
    exclude = ["ridge"]
    readonly_fields = ["training_job", "model_version", "requested_by", "fitted_model"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("ridge")  # the change page's summary loads it for its one row

    @admin.display(description="fitted model")
    def fitted_model(self, obj) -> str:
        model = obj.ridge or {}
        if not model.get("coef"):
            return "—"
        kernel = model.get("kernel")
        parts = ", ".join(["embedding", *(["middle layer"] if model.get("middle") else []),
                           *([f"language model v{model['lm']}'s middle layer"] if model.get("lm") else []),
                           "text features"])
        text = (f"ridge: {len(model['coef'])} columns ({parts}), alpha {model['alpha']}, embedding weight "
                f"{model['embed_weight']}, stretch {model.get('stretch', 1.0)}")
        if kernel:
            text += (f"; kernel ridge averaged in: {len(kernel['rows'])} graded rows, alpha {kernel['alpha']}, "
                     f"embedding weight {kernel['embed_weight']}, bandwidth {kernel['width']}x the median")
        return text
