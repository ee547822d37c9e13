"""Watchlists: an analyst's private lists of companies, and how their news reads."""

from datetime import date, timedelta

from django.db import IntegrityError, transaction

from finance import selectors
from finance.models import Company, SentimentDay, Watchlist


class WatchlistError(ValueError):
    """The list cannot be saved as asked; the message says why."""


def _companies(symbols: list[str]) -> list[Company]:
    wanted = [s.strip().upper().lstrip("$") for s in symbols if s.strip()]
    found = {c.symbol: c for c in Company.objects.filter(symbol__in=wanted)}
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise WatchlistError(f"Unknown ticker{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
    return [found[s] for s in dict.fromkeys(wanted)]


def watchlist_save(*, owner, name: str, symbols: list[str], watchlist: Watchlist | None = None) -> Watchlist:
    """Create a watchlist of `owner`'s, or rename and refill one of theirs."""
    name = name.strip()
    if not name:
        raise WatchlistError("Give the watchlist a name.")
    companies = _companies(symbols)
    try:
        with transaction.atomic():
            if watchlist is None:
                watchlist = Watchlist.objects.create(owner=owner, name=name)
            else:
                watchlist.name = name
                watchlist.save(update_fields=["name"])
            watchlist.companies.set(companies)
    except IntegrityError as exc:
        raise WatchlistError(f"You already have a watchlist called {name!r}.") from exc
    return watchlist


def watchlist_delete(*, watchlist: Watchlist) -> None:
    watchlist.delete()


def watchlist_summary(*, watchlist: Watchlist, end: date, days: int = 7) -> dict:
    """Each company's weighted score this week and last, the change, stories, and a 30-day chart of 7-day means."""
    companies = list(watchlist.companies.order_by("symbol"))
    symbols = [c.symbol for c in companies]
    frame = selectors.rollup_frame(scope=SentimentDay.Scope.COMPANY, start=end - timedelta(days=29), end=end,
                                   symbols=symbols) if symbols else None
    rows = (selectors.tickers_summary(frame, companies=companies, end=end, days=days, stories_recent=True)
            if frame is not None else [])
    daily = selectors.daily_by_ticker(frame) if frame is not None else None
    chart = None
    if daily is not None and not daily.empty:
        chart = {
            "data": [{"type": "scatter", "mode": "lines+markers", "name": symbol, "x": [str(d) for d in group["day"]],
                      "y": group["rolling_7d"].round(3).tolist()} for symbol, group in daily.groupby("symbol")],
            "layout": {"height": 320, "margin": {"t": 10, "r": 10, "b": 40, "l": 50},
                       "yaxis": {"title": {"text": "7-day mean score"}, "range": [-1, 1]},
                       "legend": {"orientation": "h", "y": -0.2}},
        }
    return {"rows": rows, "chart": chart}
