"""The sentiment rollup: per day, source and model version, the scored stories of each company, each sector and
the whole market, summed (finance.models.SentimentDay). The dashboards read these rows instead of every mention:
at 100k articles a busy ticker has ~9k mentions in 30 days and ~60 rollup rows.

Every service that changes what a day's numbers are made of (scores, mentions, relevance, which article of a
story leads it, a company's sector) marks the day dirty in its own transaction, through
`finance_data_changed(article_ids=..., companies=...)`. `rollup_refresh` recomputes the dirty days of a window
from the mentions, each under its SentimentDayState row lock, before the window is read. A writer's mark waits
for a refresh in progress and the refresh waits for a writer's commit, so a day is either clean with rows
computed from committed data, or dirty.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from finance.models import Article, ArticleSentiment, ArticleTicker, Company, SentimentDay, SentimentDayState


def local_day(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def rollup_mark_days(days: Iterable[date]) -> None:
    """Mark days dirty, in the caller's transaction (sorted, so two writers lock their days in one order)."""
    days = sorted(set(days))
    if days:
        SentimentDayState.objects.bulk_create([SentimentDayState(day=day, dirty=True) for day in days],
                                              update_conflicts=True, unique_fields=["day"], update_fields=["dirty"])


def rollup_mark_articles(article_ids: Iterable[int]) -> None:
    ids = list(set(article_ids))
    days = {local_day(moment) for moment in
            Article.objects.filter(pk__in=ids).values_list("published_at", flat=True)} if ids else set()
    rollup_mark_days(days)


def rollup_mark_companies(companies: Iterable[Company]) -> None:
    """Every day on which these companies are mentioned (after a change of sector)."""
    days = ArticleTicker.objects.filter(company__in=list(companies)) \
        .annotate(day=TruncDate("article__published_at")).values_list("day", flat=True).distinct()
    rollup_mark_days(days)


def rollup_mark_all() -> int:
    """Every day that has articles (after a bulk load that bypassed the services); returns how many."""
    days = set(Article.objects.annotate(day=TruncDate("published_at")).values_list("day", flat=True).distinct())
    rollup_mark_days(days)
    return len(days)


def rollup_rebuild() -> int:
    """Mark every day dirty and recompute it now (after a bulk load that bypassed the services); returns the days."""
    with transaction.atomic():
        days = rollup_mark_all()
    rollup_refresh(start=date.min, end=date.max)
    return days


def rollup_refresh(*, start: date, end: date) -> int:
    """Recompute the dirty days in [start, end]; returns how many were recomputed here."""
    refreshed = 0
    for day in SentimentDayState.objects.filter(dirty=True, day__range=(start, end)).values_list("day", flat=True):
        with transaction.atomic():
            state = SentimentDayState.objects.select_for_update().filter(day=day, dirty=True).first()
            if state is None:  # another reader refreshed it meanwhile
                continue
            _recompute(day)
            state.dirty, state.refreshed_at = False, timezone.now()
            state.save(update_fields=["dirty", "refreshed_at"])
            refreshed += 1
    return refreshed


def _recompute(day: date) -> None:
    tz = timezone.get_current_timezone()
    lo = datetime.combine(day, time.min, tzinfo=tz)
    hi = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    # One row per (reading, mention) of the day's story leaders; a story without mentions is in no scope.
    readings = ArticleSentiment.objects.filter(article__published_at__gte=lo, article__published_at__lt=hi,
                                               article__cluster_leader__isnull=True,
                                               article__tickers__isnull=False)
    sums = {
        "mentions": Count("article__tickers"), "relevance": Sum("article__tickers__relevance"),
        "weighted": Sum(F("article__tickers__relevance") * F("score")),
        "positive": Count("article__tickers", filter=Q(label=ArticleSentiment.Label.POSITIVE)),
        "negative": Count("article__tickers", filter=Q(label=ArticleSentiment.Label.NEGATIVE)),
    }
    rows = []
    for scope, keys, stories in (
        (SentimentDay.Scope.COMPANY, {"company_id": F("article__tickers__company_id"),
                                      "sector": F("article__tickers__company__sector")}, Count("article_id")),
        (SentimentDay.Scope.SECTOR, {"sector": F("article__tickers__company__sector")},
         Count("article_id", distinct=True)),
        (SentimentDay.Scope.MARKET, {}, Count("article_id", distinct=True)),
    ):
        groups = readings.values(version_id=F("model_version_id"), src_id=F("article__source_id"), **keys) \
            .annotate(stories=stories, **sums).order_by()
        rows += [SentimentDay(day=day, scope=scope, model_version_id=g["version_id"], source_id=g["src_id"],
                              company_id=g.get("company_id"), sector=g.get("sector") or "", stories=g["stories"],
                              mentions=g["mentions"], relevance=g["relevance"], weighted=g["weighted"],
                              positive=g["positive"], negative=g["negative"]) for g in groups]
    SentimentDay.objects.filter(day=day).delete()
    SentimentDay.objects.bulk_create(rows)
