"""Plotly figures (plain JSON dicts) for the finance dashboards; the pages draw them with core/charts.js."""

import pandas as pd

RED_TO_GREEN = [[0.0, "#b42318"], [0.35, "#f0a58f"], [0.5, "#f2f2f2"], [0.65, "#9fd8b5"], [1.0, "#1f7a4d"]]


def _days(series) -> list[str]:
    return [str(d) for d in series]


DAY_MS = 24 * 60 * 60 * 1000


def _day_axis(days: list[str]) -> dict:
    """An x axis of calendar days: labelled as dates, one tick per day over a short span (Plotly would otherwise
    subdivide a day or two into hours and fractions of a second)."""
    axis = {"type": "date", "tickformat": "%b %-d\n%Y"}
    if not days:
        return axis
    first, last = pd.Timestamp(min(days)), pd.Timestamp(max(days))
    if (last - first).days <= 14:
        axis["dtick"] = DAY_MS
    if (last - first).days < 2:  # a day or two: half a day either side, so the bars are not cut in half
        axis["range"] = [str(first - pd.Timedelta(hours=12)), str(last + pd.Timedelta(hours=12))]
    return axis


def market_figure(daily: pd.DataFrame) -> dict | None:
    """Market-wide daily score (bars coloured by sign) with the story count on a second axis."""
    if daily.empty:
        return None
    rolling = daily.set_index(pd.to_datetime(daily["day"]))["score"].rolling("7D").mean()
    return {
        "data": [
            {"type": "bar", "x": _days(daily["day"]), "y": daily["score"].round(4).tolist(), "name": "daily score",
             "marker": {"color": ["#1f7a4d" if s >= 0 else "#b42318" for s in daily["score"]]}},
            {"type": "scatter", "mode": "lines", "x": _days(daily["day"]), "y": rolling.round(4).tolist(),
             "name": "7-day mean", "line": {"color": "#2458c6", "width": 2}},
            {"type": "scatter", "mode": "lines", "x": _days(daily["day"]), "y": daily["articles"].tolist(),
             "name": "stories", "yaxis": "y2", "line": {"color": "#9aa5b8", "dash": "dot"}},
        ],
        "layout": {"height": 340, "margin": {"t": 10, "r": 50, "b": 40, "l": 50},
                   "xaxis": _day_axis(_days(daily["day"])),
                   "yaxis": {"title": {"text": "score (P(pos) − P(neg))"}, "range": [-1, 1], "zeroline": True},
                   "yaxis2": {"title": {"text": "stories"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
                   "legend": {"orientation": "h", "y": -0.2}, "bargap": 0.2},
    }


def sector_heatmap(daily_sector: pd.DataFrame) -> dict | None:
    """Sector × day heatmap of the weighted score (green bullish, red bearish)."""
    if daily_sector.empty:
        return None
    grid = daily_sector.pivot(index="sector", columns="day", values="score").sort_index()
    counts = daily_sector.pivot(index="sector", columns="day", values="articles").reindex_like(grid)
    return {
        "data": [{
            "type": "heatmap", "x": _days(grid.columns), "y": list(grid.index),
            "z": [[None if pd.isna(v) else round(float(v), 3) for v in row] for row in grid.to_numpy()],
            "customdata": [[0 if pd.isna(v) else int(v) for v in row] for row in counts.to_numpy()],
            "hovertemplate": "%{y}<br>%{x}<br>score %{z:.2f}<br>%{customdata} stories<extra></extra>",
            "colorscale": RED_TO_GREEN, "zmin": -1, "zmax": 1, "zmid": 0,
            "colorbar": {"title": {"text": "score"}},
        }],
        "layout": {"height": 80 + 28 * len(grid.index), "margin": {"t": 10, "r": 10, "b": 40, "l": 170},
                   # Days as categories: one cell each (on a date axis a single day's cell is a sliver).
                   "xaxis": {"type": "category", "nticks": 12}},
    }


def ticker_figure(daily: pd.DataFrame, prices: pd.DataFrame, headlines: list[dict]) -> dict | None:
    """Price line with news markers (coloured by score, sized by stories) and the 7-day sentiment mean."""
    if daily.empty and prices.empty:
        return None
    data = []
    if not prices.empty:
        data.append({"type": "scatter", "mode": "lines", "x": _days(prices["day"]), "y": prices["close"].tolist(),
                     "name": "close", "yaxis": "y2", "line": {"color": "#1c2330", "width": 1.5}})
    if not daily.empty:
        titles: dict[str, list[str]] = {}
        for h in headlines:
            titles.setdefault(str(h["published_at"].date()), []).append(h["title"][:80])
        close_by_day = dict(zip(_days(prices["day"]), prices["close"], strict=True)) if not prices.empty else {}
        days = _days(daily["day"])
        data.append({
            "type": "scatter", "mode": "markers", "name": "news", "x": days,
            "y": [close_by_day.get(d) for d in days] if close_by_day else daily["score"].tolist(),
            "yaxis": "y2" if close_by_day else "y",
            "marker": {"size": [8 + 4 * min(int(n), 6) for n in daily["articles"]],
                       "color": daily["score"].round(3).tolist(), "colorscale": RED_TO_GREEN, "cmin": -1, "cmax": 1,
                       "line": {"width": 1, "color": "#1c2330"}},
            "text": ["<br>".join(titles.get(d, [])[:4]) for d in days],
            "customdata": daily["score"].round(3).tolist(),
            "hovertemplate": "%{x}<br>score %{customdata:.2f}<br>%{text}<extra></extra>",
        })
        data.append({"type": "scatter", "mode": "lines", "x": days, "y": daily["rolling_7d"].round(4).tolist(),
                     "name": "sentiment, 7-day mean", "line": {"color": "#2458c6", "width": 2}})
    return {
        "data": data,
        "layout": {"height": 380, "margin": {"t": 10, "r": 60, "b": 40, "l": 50},
                   "xaxis": _day_axis(sorted({x for trace in data for x in trace["x"]})),
                   "yaxis": {"title": {"text": "sentiment"}, "range": [-1, 1]},
                   "yaxis2": {"title": {"text": "price"}, "overlaying": "y", "side": "right"},
                   "legend": {"orientation": "h", "y": -0.2}},
    }


def distribution_figure(scores: list[float]) -> dict | None:
    if not scores:
        return None
    return {
        "data": [{"type": "histogram", "x": [round(s, 3) for s in scores],
                  "xbins": {"start": -1, "end": 1, "size": 0.1}, "marker": {"color": "#2458c6"}, "name": "stories"}],
        "layout": {"height": 240, "margin": {"t": 10, "r": 10, "b": 40, "l": 40},
                   "xaxis": {"title": {"text": "story score"}, "range": [-1, 1]},
                   "yaxis": {"title": {"text": "stories"}}, "bargap": 0.05},
    }


def sector_figure(series: pd.DataFrame, *, period: str = "day") -> dict | None:
    """A sector's score per day (with the 7-day mean) or per week, and its story count on a second axis."""
    if series.empty:
        return None
    x = _days(series["day"])
    data = [{"type": "bar", "x": x, "y": series["score"].round(4).tolist(),
             "name": "weekly score" if period == "week" else "daily score",
             "marker": {"color": ["#1f7a4d" if s >= 0 else "#b42318" for s in series["score"]]}}]
    if period != "week":
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": series["rolling_7d"].round(4).tolist(),
                     "name": "7-day mean", "line": {"color": "#2458c6", "width": 2}})
    data.append({"type": "scatter", "mode": "lines", "x": x, "y": series["articles"].tolist(), "name": "stories",
                 "yaxis": "y2", "line": {"color": "#9aa5b8", "dash": "dot"}})
    return {
        "data": data,
        "layout": {"height": 340, "margin": {"t": 10, "r": 50, "b": 40, "l": 50}, "xaxis": _day_axis(x),
                   "yaxis": {"title": {"text": "score (P(pos) − P(neg))"}, "range": [-1, 1], "zeroline": True},
                   "yaxis2": {"title": {"text": "stories"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
                   "legend": {"orientation": "h", "y": -0.2}, "bargap": 0.2},
    }


def ticker_heatmap(daily_ticker: pd.DataFrame) -> dict | None:
    """Ticker × day heatmap of the weighted score (green bullish, red bearish)."""
    if daily_ticker.empty:
        return None
    figure = sector_heatmap(daily_ticker.rename(columns={"symbol": "sector"}))
    figure["data"][0]["hovertemplate"] = "%{y}<br>%{x}<br>score %{z:.2f}<br>%{customdata} stories<extra></extra>"
    figure["layout"]["margin"]["l"] = 80
    return figure
