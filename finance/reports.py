"""Watchlist reports: built for a period, stored once per period, scheduled with django-celery-beat, mailed."""

import csv
import io
import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from core.spreadsheets import spreadsheet_safe
from finance import selectors
from finance.models import Report, ReportSchedule, SentimentDay, Watchlist

TOP_HEADLINES = 5


class ReportError(ValueError):
    """The report or schedule cannot be made as asked; the message says why."""


def report_period(*, frequency: str, today: date) -> tuple[date, date]:
    """Daily: yesterday. Weekly: the 7 days up to yesterday."""
    end = today - timedelta(days=1)
    return (end, end) if frequency == ReportSchedule.Frequency.DAILY else (end - timedelta(days=6), end)


def report_build(*, watchlist: Watchlist, start: date, end: date) -> dict:
    """The numbers a report shows: per-company scores against the previous period, movers, top headlines."""
    companies = list(watchlist.companies.order_by("symbol"))
    symbols = [c.symbol for c in companies]
    span = (end - start).days + 1
    frame = selectors.rollup_frame(scope=SentimentDay.Scope.COMPANY, start=start - timedelta(days=span), end=end,
                                   symbols=symbols)
    current = frame[frame["day"] >= start] if not frame.empty else frame
    before = frame[frame["day"] < start] if not frame.empty else frame
    now_scores = selectors.scores_by(current, ["symbol"]).set_index("symbol") if not current.empty else None
    old_scores = selectors.scores_by(before, ["symbol"]).set_index("symbol") if not before.empty else None
    rows = []
    for company in companies:
        row = {"symbol": company.symbol, "name": company.name, "sector": company.sector, "stories": 0,
               "score": None, "bucket": "", "previous": None, "change": None}
        if now_scores is not None and company.symbol in now_scores.index:
            hit = now_scores.loc[company.symbol]
            row.update(stories=int(hit["articles"]), score=round(float(hit["score"]), 4), bucket=hit["bucket"])
        if old_scores is not None and company.symbol in old_scores.index:
            row["previous"] = round(float(old_scores.loc[company.symbol]["score"]), 4)
        if row["score"] is not None and row["previous"] is not None:
            row["change"] = round(row["score"] - row["previous"], 4)
        rows.append(row)
    moved = sorted((r for r in rows if r["change"] is not None), key=lambda r: -abs(r["change"]))

    def top(order):
        picked = selectors.headlines(start=start, end=end, symbols=symbols, order=order, limit=TOP_HEADLINES)
        return [{"title": h["title"], "url": h["url"], "source": h["source"], "sources": h["sources"],
                 "published_at": h["published_at"].isoformat(), "score": h["score"]}
                for h in picked if h["score"] is not None]

    scored = [r for r in rows if r["score"] is not None]
    return {
        "watchlist": watchlist.name, "period_start": start.isoformat(), "period_end": end.isoformat(),
        "stories": sum(r["stories"] for r in rows),
        "score": round(sum(r["score"] * r["stories"] for r in scored) / max(sum(r["stories"] for r in scored), 1), 4)
        if scored else None,
        "companies": rows, "movers": moved[:5],
        "top_positive": [h for h in top("most positive") if h["score"] > 0],
        "top_negative": [h for h in top("most negative") if h["score"] < 0],
    }


def report_generate(*, watchlist: Watchlist, start: date, end: date, schedule: ReportSchedule | None = None) -> Report:
    """Build and store the report for this period, replacing an earlier one; mail it after commit."""
    if start > end:
        raise ReportError("The period starts after it ends.")
    summary = report_build(watchlist=watchlist, start=start, end=end)
    with transaction.atomic():
        report, _ = Report.objects.update_or_create(
            watchlist=watchlist, period_start=start, period_end=end,
            defaults={"owner": watchlist.owner, "schedule": schedule, "generated_at": timezone.now(),
                      "summary": summary},
        )
        if (schedule is None or schedule.email) and watchlist.owner.email:
            transaction.on_commit(lambda: report_email(report=report))
    return report


def report_email(*, report: Report) -> None:
    owner = report.owner
    subject = f"Parlance: {report.watchlist.name}, {report.period_start} to {report.period_end}"
    message = EmailMultiAlternatives(subject, report_text(report=report), settings.DEFAULT_FROM_EMAIL, [owner.email])
    message.attach_alternative(report_html(report=report), "text/html")
    message.attach(f"report-{report.pk}.csv", report_csv(report=report), "text/csv")
    message.send()
    Report.objects.filter(pk=report.pk).update(emailed_to=owner.email)


def report_html(*, report: Report) -> str:
    """A standalone HTML page (no scripts, no external assets) for download and mail."""
    return render_to_string("finance/report_standalone.html", {"report": report, "s": report.summary})


def report_text(*, report: Report) -> str:
    s = report.summary
    lines = [f"{s['watchlist']}: {s['period_start']} to {s['period_end']}, {s['stories']} stories", ""]
    for row in s["companies"]:
        score = "no news" if row["score"] is None else f"{row['score']:+.2f} {row['bucket']}"
        lines.append(f"{row['symbol']:<6} {score} ({row['stories']} {'story' if row['stories'] == 1 else 'stories'})")
    return "\n".join(lines) + "\n"


def report_csv(*, report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["symbol", "name", "sector", "stories", "score", "bucket", "previous", "change"])
    for row in report.summary["companies"]:
        # Names and sectors are typed by analysts: none may reach a spreadsheet as a formula.
        writer.writerow([spreadsheet_safe(row[k]) if isinstance(row[k], str) else row[k]
                         for k in ("symbol", "name", "sector", "stories", "score", "bucket", "previous", "change")])
    return out.getvalue()


def report_schedule_save(*, owner, watchlist: Watchlist, frequency: str, time_of_day, tz: str,
                         email: bool = True) -> ReportSchedule:
    """Schedule a watchlist's report; the timetable is a django-celery-beat entry (Admin → Periodic tasks)."""
    if watchlist.owner_id != owner.pk:
        raise ReportError("You can only schedule reports of your own watchlists.")
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{tz!r} is not a timezone name.") from exc
    with transaction.atomic():
        schedule, _ = ReportSchedule.objects.update_or_create(
            watchlist=watchlist, frequency=frequency,
            defaults={"owner": owner, "time_of_day": time_of_day, "timezone": tz, "email": email},
        )
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(time_of_day.minute), hour=str(time_of_day.hour),
            day_of_week="1" if frequency == ReportSchedule.Frequency.WEEKLY else "*",
            day_of_month="*", month_of_year="*", timezone=ZoneInfo(tz),
        )
        task, _ = PeriodicTask.objects.update_or_create(
            name=f"finance report: schedule {schedule.pk}",
            defaults={"task": "finance.generate_scheduled_report", "crontab": crontab, "interval": None,
                      "args": json.dumps([schedule.pk]), "enabled": True,
                      "description": f"{watchlist.name} ({owner.get_username()}), {schedule.get_frequency_display()}"},
        )
        if schedule.periodic_task_id != task.pk:
            ReportSchedule.objects.filter(pk=schedule.pk).update(periodic_task=task)
            schedule.periodic_task = task
    return schedule


def report_schedule_delete(*, schedule: ReportSchedule) -> None:
    with transaction.atomic():
        if schedule.periodic_task_id:
            PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()
        schedule.delete()


def report_scheduled_run(*, schedule_id: int) -> Report | None:
    """What the beat entry runs: this schedule's report for the period that just ended (its timezone's today)."""
    schedule = ReportSchedule.objects.select_related("watchlist__owner").filter(pk=schedule_id).first()
    if schedule is None:
        return None
    today = timezone.now().astimezone(ZoneInfo(schedule.timezone)).date()
    start, end = report_period(frequency=schedule.frequency, today=today)
    return report_generate(watchlist=schedule.watchlist, start=start, end=end, schedule=schedule)

