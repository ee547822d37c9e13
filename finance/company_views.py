"""Analyst pages: companies (list, add, edit, re-detect), one article with its editable tickers, daily prices upload."""

import csv

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required
from core.spreadsheets import spreadsheet_safe
from finance import selectors
from finance.forms import CompanyForm, MentionAddForm, MentionRelevanceForm, PriceUploadForm, RedetectForm
from finance.models import Article, ArticleTicker, Company, PriceUpload, TickerRedetectRun
from finance.services import companies as company_service
from finance.services import prices as price_service
from mlcore.data import DataError

COMPANIES_SHOWN = 500
RECENT_PRICE_UPLOADS = 10
PROBLEMS_SHOWN = 200


# --- companies -------------------------------------------------------------------------------------


@role_required(Role.ANALYST)
@require_GET
def companies(request):
    query = request.GET.get("q", "")[:100]
    found = selectors.companies_with_counts(query=query)
    if request.GET.get("export") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="companies.csv"'
        writer = csv.writer(response)
        writer.writerow(["symbol", "name", "sector", "aliases", "articles"])
        for c in found:
            writer.writerow([c.symbol, spreadsheet_safe(c.name), spreadsheet_safe(c.sector),
                             spreadsheet_safe(" | ".join(c.aliases)), c.article_count])
        return response
    rows = list(found[: COMPANIES_SHOWN + 1])
    return render(request, "finance/companies.html", {
        "companies": rows[:COMPANIES_SHOWN], "more": len(rows) > COMPANIES_SHOWN, "query": query,
        "shown": COMPANIES_SHOWN,
    })


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def company_add(request):
    return _company_form(request, company=None)


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def company_edit(request, company_id):
    return _company_form(request, company=get_object_or_404(Company, pk=company_id))


def _company_form(request, *, company):
    form = CompanyForm(request.POST or None, company=company)
    if form.is_bound and form.is_valid():
        try:
            saved = company_service.company_save(company=company, **form.cleaned_data)
        except company_service.CompanyError as error:
            form.add_error(None, str(error))
        else:
            note = (" Its names changed: re-detect it in recent articles below to add the mentions they hold."
                    if saved.names_changed else "")
            messages.success(request, f"{saved.company.symbol} {'added' if saved.created else 'saved'}.{note}")
            url = reverse("finance:company_edit", args=[saved.company.pk])
            return redirect(f"{url}?redetect=1" if saved.names_changed else url)
    runs = company.redetect_runs.all()[:5] if company is not None else []
    return render(request, "finance/company_form.html", {
        "form": form, "company": company, "sectors": selectors.sector_names(), "runs": runs,
        "redetect_form": RedetectForm() if company is not None else None,
        "suggest_redetect": request.GET.get("redetect") == "1",
    }, status=400 if form.is_bound else 200)


@role_required(Role.ANALYST)
@require_POST
def company_redetect(request, company_id):
    company = get_object_or_404(Company, pk=company_id)
    form = RedetectForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect("finance:company_edit", company_id=company.pk)
    run = company_service.redetect_start(company=company, user=request.user, days=form.cleaned_data["days"])
    return redirect("finance:redetect_run", run_id=run.pk)


@role_required(Role.ANALYST)
@require_GET
def redetect_run(request, run_id):
    run = get_object_or_404(TickerRedetectRun.objects.select_related("company"), pk=run_id, user=request.user)
    return render(request, "finance/redetect_run.html", {"run": run})


# --- one article and its tickers -------------------------------------------------------------------


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def article(request, article_id):
    item = get_object_or_404(Article.objects.select_related("source"), pk=article_id)
    add_form = MentionAddForm(request.POST if request.POST.get("action") == "add" else None)
    error, status = "", 200
    if request.method == "POST":
        try:
            message = _mention_change(request, item, add_form)
        except company_service.CompanyError as exc:
            error, status = str(exc), 400
        else:
            if message:
                messages.success(request, message)
                return redirect("finance:article", article_id=item.pk)
            status = 400
    symbols = Company.objects.order_by("symbol").values_list("symbol", "name")
    return render(request, "finance/article.html", {
        "article": item, **selectors.article_detail(article=item), "add_form": add_form, "error": error,
        "symbols": symbols,
    }, status=status)


def _mention_change(request, item, add_form) -> str:
    """Carry out the posted edit; returns the message to flash, or "" when a form holds the errors."""
    action = request.POST.get("action")
    if action == "add":
        if not add_form.is_valid():
            return ""
        mention = company_service.mention_add(article=item, user=request.user, **add_form.cleaned_data)
        return f"Added {mention.company.symbol} at relevance {mention.relevance:.2f}."
    if action in ("relevance", "remove"):
        mention = get_object_or_404(ArticleTicker.objects.select_related("company"),
                                    pk=request.POST.get("mention") or 0, article=item)
        if action == "remove":
            company_service.mention_remove(mention=mention, user=request.user)
            return f"Removed {mention.company.symbol}; re-detection will leave it off this article."
        form = MentionRelevanceForm(request.POST)
        if not form.is_valid():
            raise company_service.CompanyError("The relevance must be a number above 0 and at most 1.")
        company_service.mention_set_relevance(mention=mention, user=request.user, **form.cleaned_data)
        return f"{mention.company.symbol} now at relevance {mention.relevance:.2f}."
    raise company_service.CompanyError("Unknown action.")


# --- daily prices ----------------------------------------------------------------------------------


@role_required(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def prices(request):
    form = PriceUploadForm(request.POST or None, request.FILES or None)
    if form.is_bound and form.is_valid():
        uploaded = form.cleaned_data["file"]
        try:
            upload = price_service.prices_upload(user=request.user, data=uploaded.read(), filename=uploaded.name)
        except DataError as error:
            form.add_error("file", str(error))
        else:
            messages.success(request, f"{upload.accepted} new close{'s' if upload.accepted != 1 else ''}, "
                                      f"{upload.updated} updated, {upload.unchanged} unchanged, "
                                      f"{upload.rejected} rejected.")
            return redirect("finance:price_upload", upload_id=upload.pk)
    uploads = PriceUpload.objects.filter(user=request.user).defer("problems")[:RECENT_PRICE_UPLOADS]
    return render(request, "finance/prices.html", {
        "form": form, "uploads": uploads, "example_header": price_service.PRICES_EXAMPLE_HEADER,
    }, status=400 if form.is_bound else 200)


@role_required(Role.ANALYST)
@require_GET
def price_upload(request, upload_id):
    upload = get_object_or_404(PriceUpload, pk=upload_id, user=request.user)
    return render(request, "finance/price_upload.html", {
        "upload": upload, "problems": upload.problems[:PROBLEMS_SHOWN], "problems_shown": PROBLEMS_SHOWN,
    })


@role_required(Role.ANALYST)
@require_GET
def price_upload_rejected_csv(request, upload_id):
    upload = get_object_or_404(PriceUpload.objects.only("pk", "problems"), pk=upload_id, user=request.user)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="prices-{upload.pk}-rejected.csv"'
    response.write("\ufeff")  # so spreadsheet programs read it as UTF-8
    writer = csv.writer(response)
    writer.writerow(["row", "symbol", "date", "close", "reason"])
    for p in upload.problems:
        writer.writerow([p.get("row"), *(spreadsheet_safe(p.get(k)) for k in ("symbol", "date", "close")),
                         p.get("reason")])
    return response
