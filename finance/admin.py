from django.contrib import admin

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


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["symbol", "name", "sector"]
    list_filter = ["sector"]
    search_fields = ["symbol", "name"]


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


@admin.register(ArticleSentiment)
class ArticleSentimentAdmin(admin.ModelAdmin):
    list_display = ["article", "model_version", "label", "score", "created_at"]
    list_filter = ["label", "model_version"]
    raw_id_fields = ["article"]


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
