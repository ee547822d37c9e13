"""Admin for course material and tutor sessions."""

from django.contrib import admin

from education.models import CourseMaterial, MaterialChunk, TutorMessage, TutorSession


class MaterialChunkInline(admin.TabularInline):
    model = MaterialChunk
    fields = ("position", "heading", "page", "char_start", "char_end", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(CourseMaterial)
class CourseMaterialAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "kind", "state", "chunk_count", "created")
    list_filter = ("state", "kind")
    search_fields = ("title", "course__title")
    list_select_related = ("course",)
    readonly_fields = ("created", "embedded_at", "attempts", "chunk_count", "page_starts", "size_bytes")
    raw_id_fields = ("course", "uploaded_by")
    inlines = [MaterialChunkInline]


class TutorMessageInline(admin.StackedInline):
    model = TutorMessage
    fields = ("question", "state", "answer", "short_answer", "hint", "explanation", "notice", "cited_chunk_ids",
              "flag_source", "flag_reason", "flagged_at", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(TutorSession)
class TutorSessionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "course", "student", "created")
    search_fields = ("title", "student__username", "course__title")
    list_select_related = ("course", "student")
    raw_id_fields = ("course", "student")
    inlines = [TutorMessageInline]


@admin.register(TutorMessage)
class TutorMessageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "state", "flag_source", "flagged_at", "created")
    list_filter = ("state", "flag_source")
    search_fields = ("question", "answer", "flag_reason")
    raw_id_fields = ("session",)
