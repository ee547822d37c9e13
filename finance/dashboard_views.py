"""Analyst dashboards: the market overview and one page per ticker, each table exportable as CSV."""

import csv
import hashlib

from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from core.roles import Role, role_required
from core.spreadsheets import spreadsheet_safe
from finance import charts, selectors
from finance.dashboard_forms import DashboardFilterForm
from finance.models import Company, SentimentDay

HEADLINES_SHOWN = 50


def _csv(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    # Titles and names come from uploads and feeds: none may reach a spreadsheet as a formula.
    writer.writerows([spreadsheet_safe(cell) if isinstance(cell, str) else cell for cell in row] for row in rows)
    return response


def _round(value, digits=4):
    return None if value is None else round(float(value), digits)


def page_body(request, template: str, build, generation) -> str:
    """The page under the site header, rendered from `build()`'s context: the same for every analyst, so where the
    cache is shared it is rendered once per `generation`, page and filters and kept DASHBOARD_CACHE_SECONDS. The
    dashboard's generation is the data generation (any change to finance data, and the activation of a
    sentiment model, starts a new one); a ticker or sector page's is its companies' (see
    selectors.company_generations), so a change about one company leaves the other companies' pages cached.

    After a change, one request renders the page while the others asking for it meanwhile get the rendering
    before the change (at most DASHBOARD_CACHE_SECONDS old) instead of rendering it too; a request that finds no
    earlier rendering renders its own.
    """
    if generation is None:
        return render_to_string(template, build())
    key, latest, lock = page_cache_keys(request.path, request.GET, generation)
    body = cache.get(key)
    if body is not None:
        return body
    if not cache.add(lock, 1, timeout=RENDER_LOCK_SECONDS):
        earlier = cache.get(latest)
        if earlier is not None:
            return earlier
    body = render_to_string(template, build())
    cache.set_many({key: body, latest: body}, selectors.DASHBOARD_CACHE_SECONDS)
    cache.delete(lock)
    return body


def page_cache_keys(path: str, params, generation) -> tuple[str, str, str]:
    """The cache keys of a page's body: this generation's rendering, the latest rendering, and the lock of the
    request rendering this generation."""
    filters = sorted((key, values) for key, values in params.lists() if key != "export")
    page = "finance:page:" + hashlib.sha256(repr((path, filters)).encode()).hexdigest()
    stamp = hashlib.sha256(repr(generation).encode()).hexdigest()[:16]
    return f"{page}:{stamp}", f"{page}:latest", f"{page}:{stamp}:rendering"


RENDER_LOCK_SECONDS = 30  # a rendering that died holding the lock blocks nothing longer than this


@role_required(Role.ANALYST)
@require_GET
def dashboard(request):
    if request.GET.get("export") in DASHBOARD_EXPORTS:
        return _dashboard(request)
    body = page_body(request, "finance/_dashboard_body.html", lambda: _dashboard(request),
                     generation=selectors.data_generation())
    return render(request, "finance/dashboard.html", {"body": body})


DASHBOARD_EXPORTS = ("market", "sectors", "movers", "headlines")


def _dashboard(request) -> dict | HttpResponse:
    """The dashboard's body context, or the CSV export asked for."""
    form = DashboardFilterForm(request.GET or None)
    w = form.window()
    data = selectors.dashboard_data(
        start=w["start"], end=w["end"], source_ids=w["source_ids"], query=w["q"],
        headlines_limit=HEADLINES_SHOWN if request.GET.get("export") != "headlines" else 10_000)
    market, sectors, moved, heads = data["market"], data["sectors"], data["movers"], data["headlines"]
    stamp = f"{w['start']}_{w['end']}"
    match request.GET.get("export"):
        case "market":
            header = ["day", "stories", "score", "share_positive", "share_negative", "bucket"]
            return _csv(f"market_{stamp}.csv", header,
                        ([r.day, r.articles, _round(r.score), _round(r.share_positive), _round(r.share_negative),
                          r.bucket] for r in market.itertuples()))
        case "sectors":
            return _csv(f"sectors_{stamp}.csv", ["sector", "day", "stories", "score", "bucket"],
                        ([r.sector, r.day, r.articles, _round(r.score), r.bucket] for r in sectors.itertuples()))
        case "movers":
            return _csv(f"movers_{stamp}.csv", ["direction", "symbol", "previous", "score", "change", "stories"],
                        ([direction, m["symbol"], _round(m["previous"]), _round(m["score"]), _round(m["change"]),
                          m["articles"]] for direction in ("up", "down") for m in moved[direction]))
        case "headlines":
            return _csv(f"headlines_{stamp}.csv", ["published_at", "source", "sources", "title", "url", "score",
                                                   "label"],
                        ([h["published_at"].isoformat(), h["source"], h["sources"], h["title"], h["url"],
                          _round(h["score"]), h["label"]] for h in heads))
    return {
        "form": form, "window": w, "status": data["status"],
        "market_chart": charts.market_figure(market), "sector_chart": charts.sector_heatmap(sectors),
        "movers": moved, "headlines": heads, "has_news": data["has_news"], "sectors": data["sectors_summary"],
        "query": request.GET.urlencode(),
    }


@role_required(Role.ANALYST)
@require_GET
def ticker(request, symbol: str):
    company = get_object_or_404(Company, symbol=symbol.upper())
    if request.GET.get("export") in ("daily", "headlines"):
        return _ticker(request, company)
    body = page_body(request, "finance/_ticker_body.html", lambda: _ticker(request, company),
                     generation=selectors.company_generations([company.pk]))
    return render(request, "finance/ticker.html", {"company": company, "body": body})


def _ticker(request, company: Company) -> dict | HttpResponse:
    form = DashboardFilterForm(request.GET or None)
    w = form.window()
    version = selectors.active_sentiment_version()
    frame = selectors.rollup_frame(scope=SentimentDay.Scope.COMPANY, start=w["start"], end=w["end"],
                                   symbols=[company.symbol], source_ids=w["source_ids"], version=version)
    daily = selectors.daily_by_ticker(frame)
    prices = selectors.price_frame(symbol=company.symbol, start=w["start"], end=w["end"])
    heads = selectors.headlines(start=w["start"], end=w["end"], symbol=company.symbol, query=w["q"],
                                source_ids=w["source_ids"], version=version,
                                limit=500 if request.GET.get("export") != "headlines" else 10_000)
    returns = dict(zip(prices["day"], prices["ret"], strict=True)) if not prices.empty else {}
    rows = [{"day": r.day, "articles": r.articles, "score": r.score, "bucket": r.bucket, "rolling": r.rolling_7d,
             "ret": returns.get(r.day)} for r in daily.itertuples()]
    stamp = f"{company.symbol}_{w['start']}_{w['end']}"
    match request.GET.get("export"):
        case "daily":
            return _csv(f"{stamp}_daily.csv", ["day", "stories", "score", "bucket", "rolling_7d", "return"],
                        ([r["day"], r["articles"], _round(r["score"]), r["bucket"], _round(r["rolling"]),
                          _round(r["ret"], 6)] for r in rows))
        case "headlines":
            return _csv(f"{stamp}_headlines.csv", ["published_at", "source", "sources", "title", "url", "score",
                                                   "label"],
                        ([h["published_at"].isoformat(), h["source"], h["sources"], h["title"], h["url"],
                          _round(h["score"]), h["label"]] for h in heads))
    score = float(selectors.scores_by(frame, ["symbol"])["score"].iloc[0]) if not frame.empty else None
    return {
        "company": company, "form": form, "window": w, "rows": rows[::-1],
        # The chart and the histogram read up to 500; the table shows the newest (the CSV has them all).
        "headlines": heads[:HEADLINES_SHOWN], "headlines_total": len(heads),
        "lead_lag": selectors.lead_lag(daily, prices),
        "chart": charts.ticker_figure(daily, prices, heads),
        "distribution": charts.distribution_figure([h["score"] for h in heads if h["score"] is not None]),
        "summary": {"stories": int(daily["articles"].sum()) if not daily.empty else 0, "score": score,
                    "bucket": selectors.bucket(score) if score is not None else ""},
        "query": request.GET.urlencode(),
    }


@role_required(Role.ANALYST)
@require_GET
def sector(request, sector: str):
    """One sector: its score by day or week, its tickers, a ticker × day heatmap and its headlines."""
    members = list(Company.objects.filter(sector__iexact=sector).order_by("symbol"))
    if not members:
        raise Http404("No company is in that sector.")
    if request.GET.get("export") in ("series", "tickers", "heatmap", "headlines"):
        return _sector(request, members)
    body = page_body(request, "finance/_sector_body.html", lambda: _sector(request, members),
                     generation=selectors.company_generations([c.pk for c in members]))
    return render(request, "finance/sector.html", {"sector": members[0].sector, "body": body})


def _sector(request, members: list[Company]) -> dict | HttpResponse:
    name = members[0].sector
    symbols = [c.symbol for c in members]
    period = "week" if request.GET.get("period") == "week" else "day"
    form = DashboardFilterForm(request.GET or None)
    w = form.window()
    version = selectors.active_sentiment_version()
    frames = selectors.rollup_frames(SentimentDay.Scope.COMPANY, SentimentDay.Scope.SECTOR, start=w["start"],
                                     end=w["end"], symbols=symbols, sectors=[name], source_ids=w["source_ids"],
                                     version=version)
    frame = frames[SentimentDay.Scope.COMPANY]
    series = selectors.sector_series(frames[SentimentDay.Scope.SECTOR], period=period)
    by_ticker = selectors.daily_by_ticker(frame)
    tickers = selectors.tickers_summary(frame, companies=members, end=w["end"])
    heads = selectors.headlines(start=w["start"], end=w["end"], symbols=symbols, query=w["q"],
                                source_ids=w["source_ids"], version=version,
                                limit=HEADLINES_SHOWN if request.GET.get("export") != "headlines" else 10_000)
    stamp = f"{slugify(name)}_{w['start']}_{w['end']}"
    match request.GET.get("export"):
        case "series":
            return _csv(f"{stamp}_{period}.csv", [period, "stories", "score", "share_positive", "share_negative",
                                                  "bucket", "rolling_7d"],
                        ([r.day, r.articles, _round(r.score), _round(r.share_positive), _round(r.share_negative),
                          r.bucket, _round(r.rolling_7d)] for r in series.itertuples()))
        case "tickers":
            return _csv(f"{stamp}_tickers.csv", ["symbol", "name", "stories", "score_7d", "previous_7d", "change",
                                                 "bucket"],
                        ([t["company"].symbol, spreadsheet_safe(t["company"].name), t["stories"], _round(t["score"]),
                          _round(t["previous"]), _round(t["change"]), t["bucket"]] for t in tickers))
        case "heatmap":
            return _csv(f"{stamp}_ticker_days.csv", ["symbol", "day", "stories", "score", "bucket"],
                        ([r.symbol, r.day, r.articles, _round(r.score), r.bucket] for r in by_ticker.itertuples()))
        case "headlines":
            return _csv(f"{stamp}_headlines.csv", ["published_at", "source", "sources", "title", "url", "score",
                                                   "label"],
                        ([h["published_at"].isoformat(), spreadsheet_safe(h["source"]), h["sources"],
                          spreadsheet_safe(h["title"]), h["url"], _round(h["score"]), h["label"]] for h in heads))
    params = request.GET.copy()
    params.pop("period", None)
    params.pop("export", None)
    return {
        "sector": name, "form": form, "window": w, "period": period, "tickers": tickers, "headlines": heads,
        "has_news": not frame.empty,
        "chart": charts.sector_figure(series, period=period), "heatmap": charts.ticker_heatmap(by_ticker),
        "query": request.GET.urlencode(), "filters": params.urlencode(),
    }
