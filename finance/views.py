"""Analyst pages: the landing page, the two-step CSV upload and the record of each import."""

import csv
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required
from core.spreadsheets import spreadsheet_safe
from finance import feeds as feed_service
from finance import reports as report_service
from finance import services
from finance import watchlists as watchlist_service
from finance.forms import (
    ArticleCsvMappingForm,
    ArticleCsvUploadForm,
    FeedSourceForm,
    FeedUploadForm,
    ReportNowForm,
    ReportScheduleForm,
    WatchlistForm,
)
from finance.models import IngestRun, Report, ReportSchedule, Source, Watchlist
from mlcore.data import DataError

RECENT_RUNS = 10
PROBLEMS_SHOWN = 200
PREVIEW_ROWS = 10
# Uploads waiting for their columns to be confirmed, by token: {owner, filename, source, timezone, columns}.
PENDING_SESSION_KEY = "finance_pending_uploads"
PENDING_KEPT = 5
STALE_UPLOAD = ("That upload is no longer waiting to be imported: it was imported already, it is over a day old, "
                "or it belongs to another session. Choose the file again.")


@role_required(Role.ANALYST)
@require_GET
def index(request):
    runs = IngestRun.objects.filter(user=request.user).select_related("source").defer("problems")[:RECENT_RUNS]
    return render(request, "finance/index.html", {"runs": runs, "example_header": services.CSV_EXAMPLE_HEADER})


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def upload(request):
    form = ArticleCsvUploadForm(request.POST, request.FILES) if request.method == "POST" else ArticleCsvUploadForm()
    if form.is_bound and form.is_valid():
        uploaded = form.cleaned_data["file"]
        data = uploaded.read()
        try:
            preview = services.csv_preview(data=data, filename=uploaded.name, limit=PREVIEW_ROWS)
        except DataError as error:
            form.add_error("file", str(error))
        else:
            token = services.pending_upload_save(data=data, user=request.user)
            pending = _pending_remember(request, token, {
                "filename": uploaded.name, "source": form.cleaned_data["source"],
                "timezone": form.cleaned_data["timezone"], "columns": preview.header,
            })
            mapping = ArticleCsvMappingForm(columns=preview.header, initial={"upload": token, **preview.guess})
            return _render_mapping(request, preview=preview, form=mapping, pending=pending)
    return _render_upload(request, form, status=400 if form.is_bound else 200)


@role_required(Role.ANALYST)
@require_POST
def upload_confirm(request):
    token = request.POST.get("upload", "")
    pending = request.session.get(PENDING_SESSION_KEY, {}).get(token)
    data = None
    if pending and pending.get("owner") == request.user.pk:
        data = services.pending_upload_read(token=token, user=request.user)
    if data is None:
        _pending_forget(request, token)
        return _render_upload(request, ArticleCsvUploadForm(), status=400, error=STALE_UPLOAD)
    form = ArticleCsvMappingForm(request.POST, columns=pending["columns"])
    try:
        if not form.is_valid():
            preview = services.csv_preview(data=data, filename=pending["filename"], limit=PREVIEW_ROWS)
            return _render_mapping(request, preview=preview, form=form, pending=pending, status=400)
        run = services.articles_upload(
            source_name=pending["source"], user=request.user, data=data, filename=pending["filename"],
            mapping=form.mapping, default_tz=ZoneInfo(pending["timezone"]),
        )
    except DataError as error:
        return _render_upload(request, ArticleCsvUploadForm(), status=400, error=str(error))
    services.pending_upload_discard(token=token, user=request.user)
    _pending_forget(request, token)
    messages.success(
        request, f"Imported {run.accepted} new article{'s' if run.accepted != 1 else ''} from {run.filename} "
                 f"into {run.source.name}; {run.duplicates} duplicate{'s' if run.duplicates != 1 else ''} "
                 f"and {run.rejected} rejected row{'s' if run.rejected != 1 else ''}.",
    )
    return redirect("finance:ingest_run", run_id=run.pk)


@role_required(Role.ANALYST)
@require_GET
def ingest_run(request, run_id):
    run = get_object_or_404(IngestRun.objects.select_related("source", "user"), pk=run_id, user=request.user)
    return render(request, "finance/ingest_run.html", {
        "run": run, "problems": run.problems[:PROBLEMS_SHOWN], "problems_shown": PROBLEMS_SHOWN,
    })


@role_required(Role.ANALYST)
@require_GET
def ingest_run_problems_csv(request, run_id):
    run = get_object_or_404(IngestRun.objects.only("pk", "problems"), pk=run_id, user=request.user)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ingest-run-{run.pk}-problems.csv"'
    response.write("\ufeff")  # so spreadsheet programs read it as UTF-8
    writer = csv.writer(response)
    writer.writerow(["row", "title", "reason"])
    for problem in run.problems:
        writer.writerow([problem.get("row"), spreadsheet_safe(problem.get("title", "")), problem.get("reason")])
    return response


def _render_upload(request, form, *, status=200, error=""):
    sources = Source.objects.order_by("name").values_list("name", flat=True)
    return render(request, "finance/upload.html",
                  {"form": form, "sources": sources, "error": error, "example_header": services.CSV_EXAMPLE_HEADER},
                  status=status)


def _render_mapping(request, *, preview, form, pending, status=200):
    mapping_fields = [form[name] for name in services.CSV_FIELDS]
    return render(request, "finance/upload_mapping.html", {
        "preview": preview, "form": form, "mapping_fields": mapping_fields, "pending": pending,
    }, status=status)


def _pending_remember(request, token: str, details: dict) -> dict:
    pending = dict(request.session.get(PENDING_SESSION_KEY, {}))
    pending[token] = {"owner": request.user.pk, "created": timezone.now().isoformat(), **details}
    newest = sorted(pending, key=lambda key: pending[key]["created"])[-PENDING_KEPT:]
    for dropped in set(pending) - set(newest):
        services.pending_upload_discard(token=dropped, user=request.user)
    request.session[PENDING_SESSION_KEY] = {key: pending[key] for key in newest}
    return pending[token]


def _pending_forget(request, token: str) -> None:
    pending = dict(request.session.get(PENDING_SESSION_KEY, {}))
    pending.pop(token, None)
    request.session[PENDING_SESSION_KEY] = pending


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def feeds(request):
    """Feed sources (polled every 15 minutes), adding one, and loading a feed file."""
    source_form = FeedSourceForm(request.POST if request.POST.get("action") == "add" else None)
    upload_form = FeedUploadForm(request.POST if request.POST.get("action") == "upload" else None,
                                 request.FILES or None)
    status = 200
    if source_form.is_bound:
        if source_form.is_valid():
            source = feed_service.feed_source_save(**source_form.cleaned_data)
            messages.success(request, f"{source.name} will be polled every 15 minutes. Use “Poll now” to read it now.")
            return redirect("finance:feeds")
        status = 400
    if upload_form.is_bound:
        if upload_form.is_valid():
            upload = upload_form.cleaned_data["file"]
            try:
                run = feed_service.feed_upload(source_name=upload_form.cleaned_data["source"], user=request.user,
                                               data=upload.read(), filename=upload.name)
            except DataError as error:
                upload_form.add_error("file", str(error))
            else:
                messages.success(request, f"Read {run.rows} entries: {run.accepted} new.")
                return redirect("finance:ingest_run", run_id=run.pk)
        status = 400
    sources = feed_service.feed_sources().annotate(article_count=Count("articles"))
    return render(request, "finance/feeds.html", {"sources": sources, "source_form": source_form,
                                                  "upload_form": upload_form}, status=status)


@role_required(Role.ANALYST)
@require_POST
def feed_poll_now(request, source_id):
    source = get_object_or_404(Source.objects.exclude(feed_url=""), pk=source_id)
    try:
        run = feed_service.feed_poll(source=source, user=request.user)
    except DataError as error:
        feed_service.feed_poll_failed(source=source, error=str(error))
        messages.error(request, str(error))
        return redirect("finance:feeds")
    messages.success(request, f"Read {run.rows} entries from {source.name}: {run.accepted} new.")
    return redirect("finance:ingest_run", run_id=run.pk)


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def watchlists(request):
    form = WatchlistForm(request.POST or None)
    if form.is_bound and form.is_valid():
        try:
            watchlist = watchlist_service.watchlist_save(owner=request.user, name=form.cleaned_data["name"],
                                                         symbols=form.symbol_list())
        except watchlist_service.WatchlistError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Watchlist {watchlist.name} saved.")
            return redirect("finance:watchlist", watchlist_id=watchlist.pk)
    lists = Watchlist.objects.filter(owner=request.user).annotate(company_count=Count("companies"))
    return render(request, "finance/watchlists.html", {"watchlists": lists, "form": form},
                  status=400 if form.is_bound else 200)


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def watchlist(request, watchlist_id):
    item = get_object_or_404(Watchlist, pk=watchlist_id, owner=request.user)
    initial = {"name": item.name, "symbols": ", ".join(item.companies.order_by("symbol").values_list("symbol",
                                                                                                    flat=True))}
    form = WatchlistForm(request.POST or None, initial=initial)
    if form.is_bound and form.is_valid():
        try:
            watchlist_service.watchlist_save(owner=request.user, name=form.cleaned_data["name"],
                                             symbols=form.symbol_list(), watchlist=item)
        except watchlist_service.WatchlistError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Watchlist saved.")
            return redirect("finance:watchlist", watchlist_id=item.pk)
    summary = watchlist_service.watchlist_summary(watchlist=item, end=timezone.localdate())
    if request.GET.get("export") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="watchlist-{item.pk}.csv"'
        writer = csv.writer(response)
        writer.writerow(["symbol", "name", "score_7d", "previous_7d", "change", "stories_7d", "bucket"])
        for row in summary["rows"]:
            writer.writerow([row["company"].symbol, spreadsheet_safe(row["company"].name),
                             *(None if row[k] is None else round(row[k], 4) for k in ("score", "previous", "change")),
                             row["stories"], row["bucket"]])
        return response
    return render(request, "finance/watchlist.html", {"watchlist": item, "form": form, **summary},
                  status=400 if form.is_bound else 200)


@role_required(Role.ANALYST)
@require_POST
def watchlist_delete(request, watchlist_id):
    item = get_object_or_404(Watchlist, pk=watchlist_id, owner=request.user)
    watchlist_service.watchlist_delete(watchlist=item)
    messages.success(request, f"Watchlist {item.name} deleted.")
    return redirect("finance:watchlists")


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def reports(request):
    action = request.POST.get("action")
    schedule_form = ReportScheduleForm(request.POST if action == "schedule" else None, owner=request.user)
    # Its own ids: both forms have a watchlist field, and duplicate ids tie the labels to the wrong form.
    now_form = ReportNowForm(request.POST if action == "now" else None, owner=request.user, auto_id="now_%s")
    if schedule_form.is_bound and schedule_form.is_valid():
        d = schedule_form.cleaned_data
        try:
            schedule = report_service.report_schedule_save(
                owner=request.user, watchlist=d["watchlist"], frequency=d["frequency"], time_of_day=d["time_of_day"],
                tz=d["timezone"], email=d["email"])
        except report_service.ReportError as error:
            schedule_form.add_error(None, str(error))
        else:
            messages.success(request, f"Scheduled: {schedule}.")
            return redirect("finance:reports")
    if now_form.is_bound and now_form.is_valid():
        start, end = report_service.report_period(frequency=now_form.cleaned_data["frequency"],
                                                  today=timezone.localdate())
        report = report_service.report_generate(watchlist=now_form.cleaned_data["watchlist"], start=start, end=end)
        messages.success(request, "Report ready.")
        return redirect("finance:report", report_id=report.pk)
    return render(request, "finance/reports.html", {
        "schedule_form": schedule_form, "now_form": now_form,
        "schedules": ReportSchedule.objects.filter(owner=request.user).select_related("watchlist"),
        "reports": Report.objects.filter(owner=request.user).select_related("watchlist").defer("summary")[:50],
    }, status=400 if (schedule_form.is_bound or now_form.is_bound) else 200)


@role_required(Role.ANALYST)
@require_GET
def report(request, report_id):
    item = get_object_or_404(Report.objects.select_related("watchlist"), pk=report_id, owner=request.user)
    name = f"report-{item.watchlist.name}-{item.period_start}-{item.period_end}".replace(" ", "_")
    if request.GET.get("format") == "html":
        response = HttpResponse(report_service.report_html(report=item), content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.html"'
        return response
    if request.GET.get("format") == "csv":
        response = HttpResponse(report_service.report_csv(report=item), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    return render(request, "finance/report.html", {"report": item, "s": item.summary})


@role_required(Role.ANALYST)
@require_POST
def report_schedule_delete(request, schedule_id):
    schedule = get_object_or_404(ReportSchedule, pk=schedule_id, owner=request.user)
    report_service.report_schedule_delete(schedule=schedule)
    messages.success(request, "Schedule removed; its reports are kept.")
    return redirect("finance:reports")
