"""Seed data for a fresh install: the out-of-the-box sentiment model and the demo universe.

Both files under finance/fixtures/ were written for Parlance (original, fictional text).
"""

import json
import random
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from finance.models import Company, DailyPrice, Source, Watchlist
from finance.services import articles_ingest, articles_score
from mlcore import api as ml

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED_CSV = FIXTURES / "sentiment_seed.csv"
DEMO_UNIVERSE = FIXTURES / "demo_universe.json"
SEED_PARAMS = {"epochs": 4, "batch_size": 16, "learning_rate": 5e-5, "max_length": 96, "patience": 2, "seed": 13}


def seed_model_ensure(*, say=print) -> ml.ModelVersion | None:
    """Train and activate the seed sentiment model unless finance.sentiment already has an active version."""
    try:
        version = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
        say(f"finance.sentiment: version {version.pk} is active")
        return version
    except ml.NoActiveVersion:
        pass
    dataset = ml.dataset_create(name="finance seed set (written for Parlance)", kind="classification",
                                data=SEED_CSV.read_bytes(), filename=SEED_CSV.name)
    say(f"finance.sentiment: training on the seed set ({dataset.rows_kept} sentences; about a minute)...")
    job = ml.finetune_now(ml.Task.FINANCE_SENTIMENT, dataset, **SEED_PARAMS)
    if job.state != "succeeded":
        raise RuntimeError(f"the seed sentiment model did not train: {job.error}\n{job.log_tail[-1500:]}")
    version = ml.activate(job.result_version)
    metrics = version.metrics
    say(f"finance.sentiment: version {version.pk} active (validation accuracy {metrics.get('accuracy', 0):.3f}, "
        f"macro-F1 {metrics.get('macro_f1', 0):.3f})")
    return version


def _price_walk(symbol: str, params: dict, days: int, end: date) -> list[tuple[date, Decimal]]:
    rng = random.Random(symbol)
    price = float(params["start"])
    out = []
    day = end - timedelta(days=days)
    while day <= end:
        if day.weekday() < 5:
            price *= 1 + float(params["drift"]) + rng.gauss(0, float(params["volatility"]))
            out.append((day, Decimal(f"{max(price, 0.01):.4f}")))
        day += timedelta(days=1)
    return out


def demo_universe_load(*, analyst_username: str = "analyst", say=print) -> dict:
    """Companies, sources, ~400 dated headlines over the last 90 days, prices, a watchlist and its daily report.

    Idempotent."""
    universe = json.loads(DEMO_UNIVERSE.read_text())
    with transaction.atomic():
        for c in universe["companies"]:
            Company.objects.update_or_create(symbol=c["symbol"], defaults={
                "name": c["name"], "sector": c["sector"], "aliases": c.get("aliases", [])})
        sources = {}
        for s in universe["sources"]:
            sources[s["name"]], _ = Source.objects.get_or_create(
                name=s["name"], defaults={"kind": Source.Kind.DEMO, "url": s.get("url", "")})
    today = timezone.localdate()
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "clustered": 0}
    for name, source in sources.items():
        rows = []
        for h in universe["headlines"]:
            if h["source"] != name:
                continue
            day = today - timedelta(days=int(h["days_ago"]))
            published = timezone.make_aware(timezone.datetime(day.year, day.month, day.day, int(h.get("hour", 9))))
            rows.append({"title": h["title"], "body": h.get("body", ""), "url": h.get("url", ""),
                         "published_at": min(published, timezone.now())})
        result = articles_ingest(source=source, rows=rows)
        for key, value in result.summary.items():
            totals[key] += value
    companies = {c.symbol: c for c in Company.objects.all()}
    prices = [DailyPrice(company=companies[symbol], date=day, close=close)
              for symbol, params in universe.get("prices", {}).items() if symbol in companies
              for day, close in _price_walk(symbol, params, 90, today)]
    DailyPrice.objects.bulk_create(prices, ignore_conflicts=True)
    analyst = get_user_model().objects.filter(username=analyst_username).first()
    if analyst is not None:
        watchlist, _ = Watchlist.objects.get_or_create(owner=analyst, name="Demo watchlist")
        if not watchlist.companies.exists():
            by_sector = {}
            for company in companies.values():
                by_sector.setdefault(company.sector, company)
            watchlist.companies.set(list(by_sector.values())[:8])
        if not watchlist.report_schedules.exists():
            from finance.reports import report_schedule_save

            report_schedule_save(owner=analyst, watchlist=watchlist, frequency="daily", time_of_day=time(7, 0),
                                 tz="UTC", email=True)
    say(f"demo universe: {len(companies)} companies, {len(sources)} sources; headlines {totals}")
    return totals


def demo_articles_score(*, say=print) -> int:
    """Score every article the active version has not read, here and now, so pages have numbers at once."""
    from finance.models import Article

    version = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    unread_articles = Article.objects.exclude(sentiments__model_version=version).order_by("pk")
    unread = list(unread_articles.values_list("pk", flat=True))
    done = sum(articles_score(article_ids=unread[i : i + 256]) for i in range(0, len(unread), 256))
    say(f"scored {done} articles")
    return done
