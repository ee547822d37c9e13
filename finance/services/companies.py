"""Companies and the tickers articles mention: adding and editing companies, analysts' edits of mentions,
and looking for a company again in recent articles (after it was added or its aliases changed)."""

import re
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.services import task_run_enqueue
from finance.models import Article, ArticleTicker, Company, RemovedMention, TickerRedetectRun
from finance.services.ingest import TickerIndex, finance_data_changed

SYMBOL_PATTERN = re.compile(r"[A-Z0-9.\-]{1,10}")
ALIAS_MAX = 200
ALIASES_MAX = 50
REDETECT_DAYS = 30
REDETECT_MAX_DAYS = 366
REDETECT_CHUNK = 2000
REDETECT_TASK = "finance.redetect_tickers"


class CompanyError(ValueError):
    """The company or mention cannot be saved as asked; the message says why."""


@dataclass
class CompanySaved:
    company: Company
    created: bool
    names_changed: bool  # new company, or another name or aliases: worth looking for it again in recent news


def symbol_clean(value: str) -> str:
    """The symbol as stored: trimmed, without a leading $, upper-case; CompanyError when it is not A–Z0-9.- (≤10)."""
    symbol = str(value or "").strip().lstrip("$").upper()
    if not symbol:
        raise CompanyError("Enter the ticker symbol.")
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise CompanyError(f"“{symbol[:20]}” is not a ticker symbol: use up to 10 letters A–Z, digits, dots or "
                           "hyphens, e.g. BRK.B.")
    return symbol


def aliases_clean(text_or_list) -> list[str]:
    """Aliases one per line (or a list): trimmed, inner spaces collapsed, blanks dropped, case-blind duplicates
    dropped (the first spelling is kept)."""
    lines = text_or_list.splitlines() if isinstance(text_or_list, str) else list(text_or_list)
    seen, out = set(), []
    for line in lines:
        alias = " ".join(str(line).split())
        if not alias or alias.casefold() in seen:
            continue
        if len(alias) > ALIAS_MAX:
            raise CompanyError(f"The alias “{alias[:40]}…” is {len(alias)} characters long; the limit is {ALIAS_MAX}.")
        seen.add(alias.casefold())
        out.append(alias)
    if len(out) > ALIASES_MAX:
        raise CompanyError(f"{len(out)} aliases given; the limit is {ALIASES_MAX}.")
    return out


def company_save(*, symbol: str, name: str, sector: str, aliases, company: Company | None = None) -> CompanySaved:
    """Add a company, or change one; symbols are unique."""
    symbol = symbol_clean(symbol)
    name = " ".join(str(name or "").split())
    sector = " ".join(str(sector or "").split())
    if not name:
        raise CompanyError("Enter the company's name.")
    if not sector:
        raise CompanyError("Enter the company's sector.")
    aliases = aliases_clean(aliases)
    clash = Company.objects.filter(symbol=symbol)
    if company is not None:
        clash = clash.exclude(pk=company.pk)
    if clash.exists():
        raise CompanyError(f"There is already a company with the symbol {symbol}.")
    created = company is None
    sector_changed = not created and company.sector != sector
    names_changed = created or (company.name, company.aliases, company.symbol) != (name, aliases, symbol)
    company = company or Company()
    company.symbol, company.name, company.sector, company.aliases = symbol, name, sector, aliases
    try:
        with transaction.atomic():
            company.save()
            # A new sector or symbol changes the dashboards' groups; a new sector, the rollup's sector rows.
            finance_data_changed(companies=[company] if sector_changed else [], tickers=[company])
    except IntegrityError as exc:  # another request took the symbol in between
        raise CompanyError(f"There is already a company with the symbol {symbol}.") from exc
    return CompanySaved(company=company, created=created, names_changed=names_changed)


def relevance_clean(value) -> float:
    try:
        relevance = float(str(value).strip())
    except (TypeError, ValueError):
        raise CompanyError(f"The relevance “{str(value)[:20]}” is not a number.") from None
    if not (0 < relevance <= 1):  # also false for nan
        raise CompanyError("The relevance must be above 0 and at most 1.")
    return relevance


def mention_add(*, article: Article, symbol: str, relevance, user) -> ArticleTicker:
    """An analyst says the article is about this company (detected_by = manual)."""
    relevance = relevance_clean(relevance)
    company = Company.objects.filter(symbol=str(symbol or "").strip().lstrip("$").upper()).first()
    if company is None:
        raise CompanyError(f"There is no company with the symbol “{str(symbol).strip()[:20]}”.")
    with transaction.atomic():
        if ArticleTicker.objects.filter(article=article, company=company).exists():
            raise CompanyError(f"The article already mentions {company.symbol}; change its relevance instead.")
        RemovedMention.objects.filter(article=article, company=company).delete()
        finance_data_changed(article_ids=[article.pk])
        return ArticleTicker.objects.create(article=article, company=company, relevance=relevance,
                                            detected_by=ArticleTicker.Detection.MANUAL, edited_by=user,
                                            edited_at=timezone.now())


def mention_set_relevance(*, mention: ArticleTicker, relevance, user) -> ArticleTicker:
    """An analyst changes how much the article is about the company; the change is recorded on the mention."""
    mention.relevance = relevance_clean(relevance)
    mention.edited_by, mention.edited_at = user, timezone.now()
    with transaction.atomic():
        mention.save(update_fields=["relevance", "edited_by", "edited_at"])
        finance_data_changed(article_ids=[mention.article_id])
    return mention


def mention_remove(*, mention: ArticleTicker, user) -> None:
    """An analyst takes the company off the article; re-detection remembers and leaves it off."""
    with transaction.atomic():
        RemovedMention.objects.update_or_create(article_id=mention.article_id, company_id=mention.company_id,
                                                defaults={"removed_by": user})
        mention.delete()
        finance_data_changed(article_ids=[mention.article_id], tickers=[mention.company])


def tickers_redetect(*, company: Company, days: int = REDETECT_DAYS) -> tuple[int, int]:
    """Look for `company` in the last `days` days' articles and add the mentions found; returns (scanned, added).

    Only adds: existing mentions (detected or edited by an analyst) are kept as they are, and an article
    an analyst took the company off stays without it. Safe to run twice.
    """
    # The whole index, so a longer name of another company wins over a shorter alias, as at ingestion.
    index = TickerIndex(list(Company.objects.all()))
    since = timezone.now() - timedelta(days=days)
    candidates = (Article.objects.filter(published_at__gte=since)
                  .exclude(tickers__company=company).exclude(removed_mentions__company=company)
                  .order_by("pk").values_list("pk", "title", "body"))
    scanned = added = 0
    last = 0
    while True:
        chunk = list(candidates.filter(pk__gt=last)[:REDETECT_CHUNK])
        if not chunk:
            break
        last = chunk[-1][0]
        scanned += len(chunk)
        found = []
        for pk, title, body in chunk:
            for found_company, relevance, how in index.mentions(title, body):
                if found_company.pk == company.pk:
                    found.append(ArticleTicker(article_id=pk, company=company, relevance=relevance, detected_by=how))
        if found:
            with transaction.atomic():
                before = ArticleTicker.objects.filter(company=company).count()
                ArticleTicker.objects.bulk_create(found, ignore_conflicts=True)
                added += ArticleTicker.objects.filter(company=company).count() - before
                finance_data_changed(article_ids=[mention.article_id for mention in found])
    return scanned, added


def redetect_gave_up(*, run_id: int, attempts: int) -> bool:
    """The task ledger gave up on a re-detection (its workers were lost each time): fail it with a reason."""
    return bool(TickerRedetectRun.objects.filter(
        pk=run_id, state__in=[TickerRedetectRun.State.QUEUED, TickerRedetectRun.State.RUNNING],
    ).update(state=TickerRedetectRun.State.FAILED, finished_at=timezone.now(),
             error=f"The worker stopped {attempts} time{'s' if attempts != 1 else ''} during the re-detection; "
                   "it was given up. Start it again."))


def redetect_start(*, company: Company, user, days: int = REDETECT_DAYS) -> TickerRedetectRun:
    """Queue a re-detection of `company` over the last `days` days on the default queue."""
    if not (1 <= int(days) <= REDETECT_MAX_DAYS):
        raise CompanyError(f"Choose between 1 and {REDETECT_MAX_DAYS} days.")
    with transaction.atomic():
        run = TickerRedetectRun.objects.create(company=company, user=user, days=int(days))
        # On the task ledger (sent after commit): a lost worker's run is done again, a lost message re-sent.
        task_run_enqueue(task=REDETECT_TASK, args=[run.pk])
    return run


def redetect_run(*, run_id: int, rerun: bool = False) -> TickerRedetectRun | None:
    """Carry out a queued re-detection once: a run already claimed (redelivered task) is left alone.

    `rerun`: the task ledger gave this call the run of a worker that was lost, so a running one is taken over
    (it only adds mentions, so doing it again is safe).
    """
    states = [TickerRedetectRun.State.QUEUED]
    if rerun:
        states.append(TickerRedetectRun.State.RUNNING)
    if not TickerRedetectRun.objects.filter(pk=run_id, state__in=states).update(state=TickerRedetectRun.State.RUNNING):
        return None
    run = TickerRedetectRun.objects.select_related("company").get(pk=run_id)
    try:
        run.scanned, run.added = tickers_redetect(company=run.company, days=run.days)
        run.state = TickerRedetectRun.State.DONE
    except Exception as exc:  # recorded on the run for the analyst, then re-raised for the worker's log
        run.state, run.error = TickerRedetectRun.State.FAILED, str(exc)[:500]
        run.finished_at = timezone.now()
        run.save(update_fields=["state", "error", "finished_at"])
        raise
    run.finished_at = timezone.now()
    run.save(update_fields=["scanned", "added", "state", "finished_at"])
    return run
