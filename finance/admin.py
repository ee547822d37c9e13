from django.contrib import admin
from django.db import transaction
from django.db.models import Q

from finance.models import (
    Article,
    ArticleSentiment,
    ArticleTicker,
    Company,
    DailyPrice,
    IngestRun,
    PriceUpload,
    RemovedMention,
    Report,
    ReportSchedule,
    Source,
    TickerRedetectRun,
    Watchlist,
)
from finance.services.ingest import finance_data_changed
from finance.services.rollup import local_day, rollup_mark_days

# Admin edits bypass the services, so these pages mark what they change themselves (the sentiment rollup's days
# and the dashboards' cache generation), in the edit's transaction.


def _story_ids(article_ids) -> list[int]:
    """The articles and their copies: deleting a leader makes its copies leaders."""
    ids = list(article_ids)
    return list(Article.objects.filter(Q(pk__in=ids) | Q(cluster_leader_id__in=ids)).values_list("pk", flat=True))


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["symbol", "name", "sector"]
    list_filter = ["sector"]
    search_fields = ["symbol", "name"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        finance_data_changed(companies=[obj] if change and "sector" in form.changed_data else [], tickers=[obj])

    def delete_model(self, request, obj):
        with transaction.atomic():
            finance_data_changed(companies=[obj])
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            finance_data_changed(companies=list(queryset))
            super().delete_queryset(request, queryset)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "feed_url", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "url"]


class ArticleTickerInline(admin.TabularInline):
    model = ArticleTicker
    extra = 0
    raw_id_fields = ["company", "edited_by"]


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "source", "published_at", "cluster_leader"]
    list_filter = ["source", "published_at"]
    search_fields = ["title", "body", "url"]
    date_hierarchy = "published_at"
    raw_id_fields = ["cluster_leader"]
    inlines = [ArticleTickerInline]

    def save_model(self, request, obj, form, change):
        before = Article.objects.filter(pk=obj.pk).values_list("published_at", flat=True).first() if change else None
        super().save_model(request, obj, form, change)
        if before is not None:
            rollup_mark_days([local_day(before)])  # moved to another day: the old one loses it
        finance_data_changed(article_ids=_story_ids([obj.pk]))

    def save_related(self, request, form, formsets, change):
        before = list(Company.objects.filter(mentions__article=form.instance))  # a mention taken off the article
        super().save_related(request, form, formsets, change)
        finance_data_changed(article_ids=[form.instance.pk], tickers=before)

    def delete_model(self, request, obj):
        with transaction.atomic():
            finance_data_changed(article_ids=_story_ids([obj.pk]))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            finance_data_changed(article_ids=_story_ids(queryset.values_list("pk", flat=True)))
            super().delete_queryset(request, queryset)


@admin.register(ArticleSentiment)
class ArticleSentimentAdmin(admin.ModelAdmin):
    list_display = ["article", "model_version", "label", "score", "created_at"]
    list_filter = ["label", "model_version"]
    raw_id_fields = ["article"]

    def save_model(self, request, obj, form, change):
        before = ArticleSentiment.objects.filter(pk=obj.pk).values_list("article_id", flat=True).first()
        super().save_model(request, obj, form, change)
        finance_data_changed(article_ids=[obj.article_id, *([before] if before else [])])

    def delete_model(self, request, obj):
        with transaction.atomic():
            finance_data_changed(article_ids=[obj.article_id])
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            finance_data_changed(article_ids=queryset.values_list("article_id", flat=True))
            super().delete_queryset(request, queryset)


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created_at"]
    search_fields = ["name", "owner__username"]
    filter_horizontal = ["companies"]


@admin.register(DailyPrice)
class DailyPriceAdmin(admin.ModelAdmin):
    list_display = ["company", "date", "close"]
    list_filter = ["company"]
    date_hierarchy = "date"


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "source", "via", "filename", "rows", "accepted", "duplicates", "rejected",
                    "clustered"]
    list_filter = ["via", "source", "created_at"]
    search_fields = ["filename", "source__name", "user__username"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "source"]
    readonly_fields = ["created_at"]


@admin.register(ReportSchedule)
class ReportScheduleAdmin(admin.ModelAdmin):
    list_display = ["watchlist", "owner", "frequency", "time_of_day", "timezone", "email", "periodic_task"]
    list_filter = ["frequency", "timezone"]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["watchlist", "owner", "period_start", "period_end", "generated_at", "emailed_to"]
    list_filter = ["period_end"]
    readonly_fields = ["summary"]


@admin.register(RemovedMention)
class RemovedMentionAdmin(admin.ModelAdmin):
    list_display = ["article", "company", "removed_by", "removed_at"]
    raw_id_fields = ["article", "company"]
    list_select_related = ["article", "company", "removed_by"]


@admin.register(TickerRedetectRun)
class TickerRedetectRunAdmin(admin.ModelAdmin):
    list_display = ["created_at", "company", "user", "days", "state", "scanned", "added", "finished_at"]
    list_filter = ["state"]
    list_select_related = ["company", "user"]


@admin.register(PriceUpload)
class PriceUploadAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "filename", "rows", "accepted", "updated", "unchanged", "rejected"]
    list_select_related = ["user"]
    readonly_fields = ["created_at", "problems"]
