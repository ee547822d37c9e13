from django.contrib import admin

from entertainment.models import (
    Character,
    DialogueChoice,
    DialogueNode,
    DialogueTree,
    GenerationJob,
    LoreEntry,
    Project,
    Story,
)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "created"]
    search_fields = ["title", "owner__username"]


@admin.register(LoreEntry)
class LoreEntryAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "priority", "insertion_order", "enabled", "can_trigger_others"]
    list_filter = ["enabled", "can_trigger_others"]
    list_select_related = ["project"]


@admin.register(Character)
class CharacterAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]
    list_select_related = ["project"]


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "genre", "updated"]
    list_select_related = ["project"]


class DialogueChoiceInline(admin.TabularInline):
    model = DialogueChoice
    fk_name = "from_node"
    fields = ["to_node", "text", "condition", "order"]
    raw_id_fields = ["to_node"]
    extra = 0


@admin.register(DialogueTree)
class DialogueTreeAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "created"]
    list_select_related = ["project"]


@admin.register(DialogueNode)
class DialogueNodeAdmin(admin.ModelAdmin):
    list_display = ["id", "tree", "speaker", "text", "is_root"]
    list_select_related = ["tree", "speaker"]
    inlines = [DialogueChoiceInline]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "kind", "mode", "state", "tokens", "tokens_per_second", "created"]
    list_filter = ["kind", "state"]
    list_select_related = ["owner"]
    readonly_fields = ["context", "context_report", "text", "candidates"]
