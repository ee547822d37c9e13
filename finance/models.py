"""Finance: companies, news articles, the tickers they mention, sentiment per model version."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Company(models.Model):
    symbol = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=200)
    sector = models.CharField(max_length=100, db_index=True)
    aliases = models.JSONField(default=list, blank=True, help_text="Other names the news uses for it")

    class Meta:
        ordering = ["symbol"]
        verbose_name_plural = "companies"
        constraints = [models.CheckConstraint(condition=~Q(symbol=""), name="finance_company_symbol_not_empty")]

    def __str__(self):
        return f"{self.symbol} · {self.name}"


class Source(models.Model):
    class Kind(models.TextChoices):
        CSV = "csv", "CSV upload"
        FEED = "feed", "RSS/Atom feed"
        API = "api", "JSON API"
        DEMO = "demo", "Demo data"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CSV)
    url = models.URLField(blank=True, default="")
    feed_url = models.URLField(blank=True, default="", help_text="Polled on the beat schedule when set")
    feed_polled_at = models.DateTimeField(null=True, blank=True)
    feed_error = models.CharField(max_length=500, blank=True, default="", help_text="Why the last poll failed")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Article(models.Model):
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="articles")
    title = models.CharField(max_length=500)
    body = models.TextField(blank=True, default="")
    url = models.URLField(max_length=1000, blank=True, default="")
    published_at = models.DateTimeField(db_index=True)
    # sha1 of the normalised title + body: the same article twice is one row.
    content_hash = models.CharField(max_length=40, unique=True)
    # The first article of its near-duplicate cluster (itself for a leader); aggregates count a story once.
    cluster_leader = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="syndicated_copies")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-published_at", "-id"]
        indexes = [models.Index(fields=["source", "published_at"])]

    def __str__(self):
        return self.title[:80]

    @property
    def is_leader(self) -> bool:
        return self.cluster_leader_id in (None, self.pk)


class ArticleTicker(models.Model):
    class Detection(models.TextChoices):
        CASHTAG = "cashtag", "Cashtag ($SYM)"
        SYMBOL = "symbol", "Symbol"
        NAME = "name", "Name or alias"
        MANUAL = "manual", "Set by an analyst"

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="tickers")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="mentions")
    relevance = models.FloatField(default=1.0, help_text="0 to 1: how much the article is about this company")
    detected_by = models.CharField(max_length=10, choices=Detection.choices)
    # Set when an analyst changed the relevance; re-detection never touches an existing mention.
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["article", "company"], name="finance_one_mention_per_company"),
            models.CheckConstraint(condition=Q(relevance__gte=0) & Q(relevance__lte=1),
                                   name="finance_relevance_0_1"),
        ]

    def __str__(self):
        return f"{self.company.symbol} in {self.article_id} ({self.relevance:.2f})"


class ArticleSentiment(models.Model):
    """One model version's reading of one article (from its sentences): P(pos) − P(neg) in [−1, 1]."""

    class Label(models.TextChoices):
        POSITIVE = "positive"
        NEUTRAL = "neutral"
        NEGATIVE = "negative"

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="sentiments")
    model_version = models.ForeignKey("mlcore.ModelVersion", on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=10, choices=Label.choices)
    p_positive = models.FloatField()
    p_neutral = models.FloatField()
    p_negative = models.FloatField()
    score = models.FloatField(db_index=True)
    sentences = models.JSONField(default=list, blank=True, help_text="[{text, label, score}] per sentence")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["article", "model_version"], name="finance_one_score_per_version"),
            models.CheckConstraint(condition=Q(score__gte=-1) & Q(score__lte=1), name="finance_score_range"),
        ]

    def __str__(self):
        return f"{self.article_id}: {self.label} {self.score:+.2f}"


class Watchlist(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlists")
    name = models.CharField(max_length=100)
    companies = models.ManyToManyField(Company, blank=True, related_name="watchlists")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="finance_watchlist_name_per_owner")]

    def __str__(self):
        return self.name


class DailyPrice(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="prices")
    date = models.DateField()
    close = models.DecimalField(max_digits=14, decimal_places=4)

    class Meta:
        ordering = ["company", "date"]
        constraints = [models.UniqueConstraint(fields=["company", "date"], name="finance_one_price_per_day")]

    def __str__(self):
        return f"{self.company.symbol} {self.date} {self.close}"


class IngestRun(models.Model):
    """One load of articles (a CSV upload, a feed poll, an API push) and what became of its rows."""

    class Via(models.TextChoices):
        CSV = "csv", "CSV upload"
        FEED = "feed", "RSS/Atom feed"
        API = "api", "JSON API"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="finance_ingest_runs")
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="ingest_runs")
    via = models.CharField(max_length=10, choices=Via.choices)
    filename = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    rows = models.PositiveIntegerField(default=0, help_text="Data rows read: accepted + duplicates + rejected")
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    clustered = models.PositiveIntegerField(default=0, help_text="Accepted articles that are syndicated copies")
    problems = models.JSONField(default=list, blank=True,
                                help_text="[{row, title, reason, kind}] for each duplicate and rejected row")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(rows=F("accepted") + F("duplicates") + F("rejected")),
                                   name="finance_ingest_run_rows_add_up"),
            models.CheckConstraint(condition=Q(clustered__lte=F("accepted")),
                                   name="finance_ingest_run_clustered_le_accepted"),
        ]

    def __str__(self):
        return f"{self.get_via_display()} into {self.source} at {self.created_at:%Y-%m-%d %H:%M}"


class ReportSchedule(models.Model):
    """A watchlist report generated on a timetable (a django-celery-beat entry, visible in the admin)."""

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly (Mondays)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="report_schedules")
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="report_schedules")
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.DAILY)
    time_of_day = models.TimeField(help_text="When the report is made, in the schedule's timezone")
    timezone = models.CharField(max_length=64, default="UTC")
    email = models.BooleanField(default=True, help_text="Mail it to the owner when mail is configured")
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["watchlist__name", "frequency"]
        constraints = [models.UniqueConstraint(fields=["watchlist", "frequency"],
                                               name="finance_one_schedule_per_watchlist_frequency")]

    def __str__(self):
        return f"{self.watchlist} · {self.get_frequency_display()} at {self.time_of_day:%H:%M} {self.timezone}"


class Report(models.Model):
    """A stored report for one watchlist and period; making the same period again replaces it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="finance_reports")
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="reports")
    schedule = models.ForeignKey(ReportSchedule, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="reports")
    period_start = models.DateField()
    period_end = models.DateField()
    generated_at = models.DateTimeField()
    summary = models.JSONField(default=dict)
    emailed_to = models.CharField(max_length=254, blank=True, default="")

    class Meta:
        ordering = ["-period_end", "-generated_at"]
        constraints = [
            models.UniqueConstraint(fields=["watchlist", "period_start", "period_end"],
                                    name="finance_one_report_per_period"),
            models.CheckConstraint(condition=Q(period_start__lte=F("period_end")), name="finance_report_period_order"),
        ]

    def __str__(self):
        return f"{self.watchlist} {self.period_start}–{self.period_end}"


class RemovedMention(models.Model):
    """An analyst took this company off this article; re-detecting tickers does not add it back."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="removed_mentions")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="removed_mentions")
    removed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    removed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["article", "company"], name="finance_one_removal_per_mention")]

    def __str__(self):
        return f"{self.company_id} off {self.article_id}"


class TickerRedetectRun(models.Model):
    """Looking for one company again in the last days' articles (after it was added or its aliases changed)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="redetect_runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="finance_redetect_runs")
    days = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    scanned = models.PositiveIntegerField(default=0, help_text="Articles read")
    added = models.PositiveIntegerField(default=0, help_text="Mentions added")
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(days__gte=1) & Q(days__lte=366),
                                              name="finance_redetect_days_range")]

    def __str__(self):
        return f"Re-detect {self.company_id} over {self.days} days ({self.state})"


class PriceUpload(models.Model):
    """One daily-prices CSV load and what became of its rows."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="finance_price_uploads")
    filename = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    rows = models.PositiveIntegerField(default=0, help_text="accepted + updated + unchanged + rejected")
    accepted = models.PositiveIntegerField(default=0, help_text="New (company, day) closes")
    updated = models.PositiveIntegerField(default=0, help_text="Closes that replaced another value")
    unchanged = models.PositiveIntegerField(default=0, help_text="Closes already stored with this value")
    rejected = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text="[{row, symbol, date, close, reason}]")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(rows=F("accepted") + F("updated") + F("unchanged") + F("rejected")),
                                   name="finance_price_upload_rows_add_up"),
        ]

    def __str__(self):
        return f"Prices from {self.filename or 'a file'} at {self.created_at:%Y-%m-%d %H:%M}"


class SentimentDay(models.Model):
    """The scored stories of one company, one sector or the whole market on one day from one source, as read by
    one model version, summed: the rollup the dashboards read instead of every mention.

    Kept by finance.services.rollup: writers mark the day dirty (SentimentDayState) and it is recomputed from the
    mentions before it is read. `stories` counts each story once in its scope (an article about two companies of
    a sector is one story of the sector); `mentions`, `positive` and `negative` count (story, company) pairs.
    """

    class Scope(models.TextChoices):
        COMPANY = "company"
        SECTOR = "sector"
        MARKET = "market"

    day = models.DateField()
    model_version = models.ForeignKey("mlcore.ModelVersion", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=7, choices=Scope.choices)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    sector = models.CharField(max_length=100, blank=True, default="")
    stories = models.PositiveIntegerField()
    mentions = models.PositiveIntegerField()
    relevance = models.FloatField(help_text="Sum of the mentions' relevance")
    weighted = models.FloatField(help_text="Sum of relevance × score")
    positive = models.PositiveIntegerField(help_text="Mentions of stories labelled positive")
    negative = models.PositiveIntegerField(help_text="Mentions of stories labelled negative")

    class Meta:
        indexes = [models.Index(fields=["scope", "model_version", "day"]),
                   models.Index(fields=["company", "model_version", "day"])]

    def __str__(self):
        return f"{self.day} {self.scope} {self.company_id or self.sector or 'all'}: {self.stories} stories"


class SentimentDayState(models.Model):
    """Whether a day's SentimentDay rows must be recomputed before they are read; its row lock orders refreshes
    against writers."""

    day = models.DateField(unique=True)
    dirty = models.BooleanField(default=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.day}: {'dirty' if self.dirty else 'fresh'}"
