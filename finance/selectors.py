"""Reads of finance: sentiment aggregated per ticker, sector and day (pandas).

Stories are counted once: a syndicated copy (an article with a cluster leader) adds a source
to its story, not an article. Scores are relevance-weighted means of P(pos) − P(neg) from the
active sentiment version, bucketed the Alpha Vantage way.
"""

import hashlib
import time as clock
from datetime import date, datetime, time, timedelta

import pandas as pd
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from finance.models import Article, ArticleSentiment, ArticleTicker, SentimentDay
from mlcore import api as ml

MENTION_COLUMNS = ["article", "published_at", "symbol", "company", "sector", "relevance", "score", "label",
                   "source", "sources"]


# Dashboards computed from the same data are shared between analysts for this long; any change to finance data
# (articles, mentions, scores, prices) bumps the generation first, so a cached dashboard is never stale.
DASHBOARD_CACHE_SECONDS = 60
DATA_GENERATION_KEY = "finance:data-generation"
# Pages about some companies only (ticker, sector) are cached on these instead: one generation per company, bumped
# by changes to its mentions, headlines or record, and an epoch bumped by changes to everything (prices, a model).
PAGES_EPOCH_KEY = "finance:pages-epoch"
COMPANY_GENERATION_KEY = "finance:company-generation:{}"
PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache")


def data_generation() -> int | None:
    """The finance data generation, or None when the default cache is per process: a worker's bump would not
    reach this process there, so nothing may be cached."""
    if settings.CACHES["default"]["BACKEND"] in PER_PROCESS_CACHES:
        return None
    generation = cache.get(DATA_GENERATION_KEY)
    if generation is None:  # never set, or evicted: a fresh value no cached entry can carry
        cache.add(DATA_GENERATION_KEY, clock.time_ns(), timeout=None)
        generation = cache.get(DATA_GENERATION_KEY)
    return generation


def company_generations(company_ids: list[int]) -> tuple | None:
    """The pages epoch and the page generations of these companies (None where the cache is per process): the
    cache key of a page that shows these companies only."""
    if settings.CACHES["default"]["BACKEND"] in PER_PROCESS_CACHES:
        return None
    keys = [PAGES_EPOCH_KEY, *(COMPANY_GENERATION_KEY.format(pk) for pk in sorted(company_ids))]
    found = cache.get_many(keys)
    missing = [key for key in keys if key not in found]
    if missing:  # never set, or evicted: fresh values no cached page can carry
        for key in missing:
            cache.add(key, clock.time_ns(), timeout=None)
        found = cache.get_many(keys)
    return tuple(found.get(key) for key in keys)


def bucket(score: float) -> str:
    """bearish ≤ −0.35 < somewhat bearish ≤ −0.15 < neutral < 0.15 ≤ somewhat bullish < 0.35 ≤ bullish."""
    if score <= -0.35:
        return "bearish"
    if score <= -0.15:
        return "somewhat bearish"
    if score < 0.15:
        return "neutral"
    if score < 0.35:
        return "somewhat bullish"
    return "bullish"


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return datetime.combine(start, time.min, tzinfo=tz), datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)


def _copies_plus_one(leader: str):
    """The number of sources of the story led by the article `leader` names: itself plus its syndicated copies."""
    copies = Article.objects.filter(cluster_leader_id=OuterRef(leader)).order_by().values("cluster_leader_id") \
        .annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(copies, output_field=IntegerField()), 0) + 1


def mentions_frame(*, start: date, end: date, symbols: list[str] | None = None,
                   source_ids: list[int] | None = None) -> pd.DataFrame:
    """One row per (story, company) in [start, end] with the active version's score; one query."""
    try:
        version = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    except ml.NoActiveVersion:
        return pd.DataFrame(columns=MENTION_COLUMNS)
    lo, hi = _day_bounds(start, end)
    mentions = ArticleTicker.objects.filter(
        article__published_at__gte=lo, article__published_at__lt=hi,
        article__cluster_leader__isnull=True,
        article__sentiments__model_version=version,
    )
    if symbols:
        mentions = mentions.filter(company__symbol__in=symbols)
    if source_ids:
        mentions = mentions.filter(article__source_id__in=source_ids)
    # Copies are counted per row by a correlated subquery (an index lookup on cluster_leader): a Count over the
    # join would GROUP BY every selected column, which sorts the whole window (on disk at 100k articles).
    rows = mentions.annotate(sources=_copies_plus_one("article_id")).values_list(
        "article_id", "article__published_at", "company__symbol", "company__name", "company__sector", "relevance",
        "article__sentiments__score", "article__sentiments__label", "article__source__name", "sources",
    )
    frame = pd.DataFrame(list(rows), columns=MENTION_COLUMNS)
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    frame["day"] = frame["published_at"].dt.tz_convert(timezone.get_current_timezone()).dt.date
    return frame


UNKNOWN = object()  # a `version` argument not given: look the active one up


def active_sentiment_version():
    """The active finance sentiment version, or None."""
    try:
        return ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    except ml.NoActiveVersion:
        return None


ROLLUP_COLUMNS = ["day", "symbol", "sector", "stories", "mentions", "relevance", "weighted", "positive", "negative"]
ROLLUP_SUMS = ROLLUP_COLUMNS[3:]


def rollup_frames(*scopes: str, start: date, end: date, source_ids: list[int] | None = None,
                  symbols: list[str] | None = None, sectors: list[str] | None = None,
                  version=UNKNOWN) -> dict[str, pd.DataFrame]:
    """The sentiment rollup's rows of each of `scopes` ("company", "sector", "market") in [start, end] read by the
    active version, its dirty days recomputed first: per (day, source, company or sector) sums of stories,
    mentions, relevance, relevance × score and labels. `symbols` narrows the company rows, `sectors` the sector
    rows. `version`: the active sentiment version where the caller has it. Three queries when no day is dirty.

    The aggregates below take these rows as they take mention rows, grouped by the scope's own keys: company rows
    by symbol, sector rows by sector, market rows by day (grouping company rows by sector would count a story
    about two companies twice).
    """
    from finance.services.rollup import rollup_refresh  # the services import this module

    frames = {scope: pd.DataFrame(columns=ROLLUP_COLUMNS) for scope in scopes}
    version = active_sentiment_version() if version is UNKNOWN else version
    if version is None:
        return frames
    rollup_refresh(start=start, end=end)
    wanted = Q()
    for scope in scopes:
        narrow = Q(scope=scope)
        if scope == SentimentDay.Scope.COMPANY and symbols is not None:
            narrow &= Q(company__symbol__in=symbols)
        if scope == SentimentDay.Scope.SECTOR and sectors is not None:
            narrow &= Q(sector__in=sectors)
        wanted |= narrow
    rows = SentimentDay.objects.filter(wanted, model_version=version, day__range=(start, end))
    if source_ids:
        rows = rows.filter(source_id__in=source_ids)
    # Summed over sources in SQL: the pages never show them apart, and it is a fifth of the rows to carry.
    summed = rows.values("scope", "day", "company__symbol", "sector").order_by() \
        .annotate(**{f"total_{name}": Sum(name) for name in ROLLUP_SUMS})
    found = pd.DataFrame(list(summed.values_list("scope", "day", "company__symbol", "sector",
                                                 *(f"total_{name}" for name in ROLLUP_SUMS))),
                         columns=["scope", *ROLLUP_COLUMNS])
    for scope, part in found.groupby("scope"):
        frames[scope] = part.drop(columns=["scope"]).reset_index(drop=True)
    return frames


def rollup_frame(*, scope: str, **window) -> pd.DataFrame:
    """One scope's rows of rollup_frames."""
    return rollup_frames(scope, **window)[scope]


def _aggregate(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Stories, relevance-weighted score, label shares and bucket per group of `keys`, from mention rows
    (mentions_frame) or rollup rows (rollup_frame)."""
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "articles", "score", "share_positive", "share_negative", "bucket"])
    if "mentions" in frame.columns:
        grouped = frame.groupby(keys, sort=True)[ROLLUP_SUMS].sum().reset_index()
        grouped = grouped.assign(articles=grouped["stories"], score=grouped["weighted"] / grouped["relevance"],
                                 share_positive=grouped["positive"] / grouped["mentions"],
                                 share_negative=grouped["negative"] / grouped["mentions"])
        grouped["bucket"] = grouped["score"].map(bucket)
        return grouped[[*keys, "articles", "share_positive", "share_negative", "score", "bucket"]]
    work = frame.assign(weighted=frame["score"] * frame["relevance"],
                        positive=(frame["label"] == "positive").astype(float),
                        negative=(frame["label"] == "negative").astype(float))
    grouped = work.groupby(keys, sort=True).agg(
        articles=("article", "nunique"), weighted=("weighted", "sum"), relevance=("relevance", "sum"),
        share_positive=("positive", "mean"), share_negative=("negative", "mean"),
    ).reset_index()
    grouped["score"] = grouped["weighted"] / grouped["relevance"]
    grouped["bucket"] = grouped["score"].map(bucket)
    return grouped.drop(columns=["weighted", "relevance"])


def daily_by_ticker(frame: pd.DataFrame) -> pd.DataFrame:
    """Per ticker and day: stories, weighted score, shares, bucket, and the 7-day rolling mean."""
    daily = _aggregate(frame, ["symbol", "day"])
    if daily.empty:
        return daily.assign(rolling_7d=pd.Series(dtype=float))
    rolled = []
    for _, group in daily.groupby("symbol", sort=True):
        series = group.set_index(pd.to_datetime(group["day"]))["score"]
        rolled.append(series.rolling("7D").mean().to_numpy())
    daily["rolling_7d"] = [value for chunk in rolled for value in chunk]
    return daily


def daily_by_sector(frame: pd.DataFrame) -> pd.DataFrame:
    return _aggregate(frame, ["sector", "day"])


def daily_market(frame: pd.DataFrame) -> pd.DataFrame:
    return _aggregate(frame.assign(market="all"), ["market", "day"]).drop(columns=["market"])


def weekly_by_ticker(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return _aggregate(frame, ["symbol", "week"])
    weeks = pd.to_datetime(frame["day"]).dt.to_period("W-SUN").dt.start_time.dt.date
    return _aggregate(frame.assign(week=weeks), ["symbol", "week"])


def movers(frame: pd.DataFrame, *, end: date, days: int = 7, limit: int = 5) -> dict[str, list[dict]]:
    """Tickers whose weighted score moved most between the last `days` days and the `days` before."""
    if frame.empty:
        return {"up": [], "down": []}
    recent_start, previous_start = end - timedelta(days=days - 1), end - timedelta(days=2 * days - 1)
    recent = _aggregate(frame[frame["day"] >= recent_start], ["symbol"]).set_index("symbol")
    previous = _aggregate(frame[(frame["day"] >= previous_start) & (frame["day"] < recent_start)],
                          ["symbol"]).set_index("symbol")
    both = recent.add_suffix("_now").join(previous.add_suffix("_before"), how="inner")
    if both.empty:
        return {"up": [], "down": []}
    both["change"] = both["score_now"] - both["score_before"]
    rows = [{"symbol": symbol, "score": row["score_now"], "previous": row["score_before"], "change": row["change"],
             "articles": int(row["articles_now"])} for symbol, row in both.iterrows()]
    up = sorted((r for r in rows if r["change"] > 0), key=lambda r: (-r["change"], r["symbol"]))[:limit]
    down = sorted((r for r in rows if r["change"] < 0), key=lambda r: (r["change"], r["symbol"]))[:limit]
    return {"up": up, "down": down}


def headlines(*, start: date, end: date, symbol: str | None = None, query: str = "",
              source_ids: list[int] | None = None, limit: int = 200, symbols: list[str] | None = None,
              order: str = "newest", version=UNKNOWN) -> list[dict]:
    """Stories (syndicated copies folded in) with the active version's score and their sources.

    `order`: "newest", "most positive" or "most negative" (unscored stories last).
    """
    lo, hi = _day_bounds(start, end)
    qs = Article.objects.filter(published_at__gte=lo, published_at__lt=hi, cluster_leader__isnull=True)
    # Ticker filters are semi-joins (no DISTINCT) and the per-story values are correlated subqueries (no GROUP BY),
    # so for "newest" PostgreSQL walks the published_at index and computes them for the `limit` rows shown only.
    # Companies by id, not by a join on symbol: PostgreSQL then knows how many mentions a company has (a busy
    # ticker's 28k of 175k) and walks the newest articles probing the mention index, 10x faster (6 vs 64 ms).
    if symbol:
        qs = qs.filter(pk__in=ArticleTicker.objects.filter(company_id__in=_company_ids([symbol])).values("article_id"))
    if symbols is not None:
        qs = qs.filter(pk__in=ArticleTicker.objects.filter(company_id__in=_company_ids(symbols)).values("article_id"))
    if query:
        qs = qs.filter(Q(title__icontains=query) | Q(body__icontains=query))
    if source_ids:
        qs = qs.filter(source_id__in=source_ids)
    version = active_sentiment_version() if version is UNKNOWN else version
    readings = ArticleSentiment.objects.filter(article=OuterRef("pk"), model_version=version)
    qs = qs.annotate(
        score=Subquery(readings.values("score")[:1]), label=Subquery(readings.values("label")[:1]),
        sources=_copies_plus_one("pk"),
    )
    ordering = {"newest": ["-published_at", "-id"],
                "most positive": [F("score").desc(nulls_last=True), "-published_at"],
                "most negative": [F("score").asc(nulls_last=True), "-published_at"]}[order]
    rows = qs.order_by(*ordering).values("id", "title", "url", "published_at", "source__name", "score", "label",
                                         "sources")[:limit]
    return [{"id": r["id"], "title": r["title"], "url": r["url"], "published_at": r["published_at"],
             "source": r["source__name"], "score": r["score"], "label": r["label"],
             "bucket": bucket(r["score"]) if r["score"] is not None else "", "sources": r["sources"]} for r in rows]


def _company_ids(symbols: list[str]) -> list[int]:
    from finance.models import Company

    return list(Company.objects.filter(symbol__in=symbols).values_list("pk", flat=True))


def dashboard_data(*, start: date, end: date, source_ids: list[int], query: str = "",
                   headlines_limit: int = 50) -> dict:
    """The market dashboard's numbers: daily market and sector scores, movers, sector table, headlines and the
    sentiment version's progress.

    Cached (keyed on the filters, the active sentiment version and the data generation) where the cache is shared.
    """
    version = active_sentiment_version()
    version_id = version.pk if version is not None else None
    generation = data_generation()
    key = None
    if generation is not None:
        # Hashed: the search text may hold anything (spaces, control characters) and be long.
        key = "finance:dashboard:" + hashlib.sha256(repr((
            generation, version_id, start, end, sorted(source_ids), headlines_limit, query)).encode()).hexdigest()
        cached = cache.get(key)
        if cached is not None:
            return cached
    scope = SentimentDay.Scope
    frames = rollup_frames(scope.MARKET, scope.SECTOR, scope.COMPANY, start=start, end=end, source_ids=source_ids,
                           version=version)
    market, sectors, companies = frames[scope.MARKET], frames[scope.SECTOR], frames[scope.COMPANY]
    data = {
        "market": daily_market(market), "sectors": daily_by_sector(sectors), "movers": movers(companies, end=end),
        "sectors_summary": sectors_summary(sectors), "has_news": not market.empty,
        "headlines": headlines(start=start, end=end, query=query, source_ids=source_ids, limit=headlines_limit,
                               version=version),
        "status": sentiment_status(version=version),
    }
    if key is not None:
        cache.set(key, data, DASHBOARD_CACHE_SECONDS)
    return data


def price_frame(*, symbol: str, start: date, end: date) -> pd.DataFrame:
    """Daily closes and returns of one company."""
    from finance.models import DailyPrice

    rows = DailyPrice.objects.filter(company__symbol=symbol, date__gte=start - timedelta(days=7), date__lte=end) \
        .order_by("date").values_list("date", "close")
    frame = pd.DataFrame(list(rows), columns=["day", "close"])
    if frame.empty:
        return frame.assign(ret=pd.Series(dtype=float))
    frame["close"] = frame["close"].astype(float)
    frame["ret"] = frame["close"].pct_change()
    return frame[frame["day"] >= start].reset_index(drop=True)


def lead_lag(daily: pd.DataFrame, prices: pd.DataFrame, *, lags=(-2, -1, 0, 1, 2)) -> list[dict]:
    """Correlation of a ticker's daily score with its return `lag` trading days later (negative: before).

    Days without news are left out rather than counted as neutral.
    """
    if daily.empty or prices.empty:
        return []
    returns = prices.set_index("day")["ret"]
    scores = daily.set_index("day")["score"]
    out = []
    for lag in lags:
        shifted = returns.shift(-lag)
        joined = pd.concat([scores, shifted], axis=1, join="inner").dropna()
        n = len(joined)
        corr = float(joined.iloc[:, 0].corr(joined.iloc[:, 1])) if n >= 3 else None
        out.append({"lag": lag, "n": n, "correlation": None if corr is None or pd.isna(corr) else corr})
    return out


def sentiment_status(*, version=UNKNOWN) -> dict:
    """The active sentiment version and how much of the history it has read (re-scoring progress)."""
    total = Article.objects.count()
    version = active_sentiment_version() if version is UNKNOWN else version
    if version is None:
        return {"version": None, "read": 0, "total": total, "percent": 0.0}
    read = ArticleSentiment.objects.filter(model_version=version).count()
    return {"version": version, "read": read, "total": total, "percent": 100.0 * read / total if total else 100.0}


def scores_by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Stories, weighted score, shares and bucket per group of `keys` (e.g. ["symbol"])."""
    return _aggregate(frame, keys)


# Companies, articles and sectors (pages that read one of them).


def companies_with_counts(*, query: str = ""):
    """Companies with how many articles mention each, filtered by symbol, name, sector or alias; one query."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from finance.models import Company

    companies = Company.objects.annotate(article_count=Count("mentions"))
    query = " ".join(query.split())
    if query:
        companies = companies.annotate(aliases_text=Cast("aliases", TextField())).filter(
            Q(symbol__icontains=query) | Q(name__icontains=query) | Q(sector__icontains=query)
            | Q(aliases_text__icontains=query))
    return companies.order_by("symbol")


def sector_names() -> list[str]:
    from finance.models import Company

    return list(Company.objects.order_by("sector").values_list("sector", flat=True).distinct())


def article_detail(*, article) -> dict:
    """An article's story (its leader and copies, oldest first), readings per model version and mentions."""
    from finance.models import Article as ArticleModel

    leader_id = article.cluster_leader_id or article.pk
    story = list(ArticleModel.objects.filter(Q(pk=leader_id) | Q(cluster_leader_id=leader_id))
                 .select_related("source").only("id", "title", "url", "published_at", "source__name",
                                                "cluster_leader_id").order_by("published_at", "id"))
    story.sort(key=lambda copy: copy.pk != leader_id)  # the leader first, then its copies as they came
    try:
        active = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    except ml.NoActiveVersion:
        active = None
    readings = list(ArticleSentiment.objects.filter(article=article).select_related("model_version")
                    .order_by("-model_version__created_at", "-model_version_id"))
    for reading in readings:
        reading.is_active = active is not None and reading.model_version_id == active.pk
        reading.bucket = bucket(reading.score)
    readings.sort(key=lambda reading: not reading.is_active)  # the active version's reading first
    mentions = list(ArticleTicker.objects.filter(article=article).select_related("company", "edited_by")
                    .order_by("-relevance", "company__symbol"))
    return {"story": story, "sources": len(story), "readings": readings, "mentions": mentions}


def sector_series(frame: pd.DataFrame, *, period: str = "day") -> pd.DataFrame:
    """The sector's stories, weighted score, shares and bucket per day (with the 7-day rolling mean of the
    daily score) or per week (weeks start on Monday; `day` is the Monday)."""
    if period == "week":
        if frame.empty:
            return _aggregate(frame, ["day"]).assign(rolling_7d=pd.Series(dtype=float))
        weeks = pd.to_datetime(frame["day"]).dt.to_period("W-SUN").dt.start_time.dt.date
        weekly = _aggregate(frame.assign(day=weeks), ["day"])
        return weekly.assign(rolling_7d=None)
    daily = _aggregate(frame, ["day"])
    if daily.empty:
        return daily.assign(rolling_7d=pd.Series(dtype=float))
    daily["rolling_7d"] = daily.set_index(pd.to_datetime(daily["day"]))["score"].rolling("7D").mean().to_numpy()
    return daily


def tickers_summary(frame: pd.DataFrame, *, companies, end: date, days: int = 7,
                    stories_recent: bool = False) -> list[dict]:
    """Per company: stories (in the whole frame, or with `stories_recent` in the last `days` days), the weighted
    score of the last `days` days, of the `days` before, the change and the bucket; companies without news keep
    None."""
    rows = {c.symbol: {"company": c, "stories": 0, "score": None, "previous": None, "change": None, "bucket": ""}
            for c in companies}
    if not frame.empty:
        recent_start = end - timedelta(days=days - 1)
        previous_start = recent_start - timedelta(days=days)
        recent = frame[frame["day"] >= recent_start]
        for r in _aggregate(recent if stories_recent else frame, ["symbol"]).itertuples():
            if r.symbol in rows:
                rows[r.symbol]["stories"] = int(r.articles)
        for key, part in (("score", recent),
                          ("previous", frame[(frame["day"] >= previous_start) & (frame["day"] < recent_start)])):
            for r in _aggregate(part, ["symbol"]).itertuples():
                if r.symbol in rows:
                    rows[r.symbol][key] = float(r.score)
        for row in rows.values():
            if row["score"] is not None:
                row["bucket"] = bucket(row["score"])
                if row["previous"] is not None:
                    row["change"] = row["score"] - row["previous"]
    return list(rows.values())


def sectors_summary(frame: pd.DataFrame) -> list[dict]:
    """Per sector over the whole frame: stories, weighted score, bucket (for the dashboard's sector table)."""
    table = _aggregate(frame, ["sector"])
    return [{"sector": r.sector, "stories": int(r.articles), "score": float(r.score), "bucket": r.bucket}
            for r in table.itertuples()]
