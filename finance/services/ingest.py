"""Ingesting articles: validation, one row per article, tickers, syndication clusters, sentiment scores."""

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core.services import task_run_enqueue
from finance.models import Article, ArticleSentiment, ArticleTicker, Company, Source
from finance.selectors import COMPANY_GENERATION_KEY, DATA_GENERATION_KEY, PAGES_EPOCH_KEY
from finance.services.rollup import rollup_mark_articles, rollup_mark_companies
from mlcore import api as ml
from mlcore.data import near_duplicate_clusters, normalize_text

log = logging.getLogger(__name__)

TITLE_MAX = 500
BODY_MAX = 100_000
SCORE_BATCH = 256
CLUSTER_WINDOW = timedelta(days=3)
CLUSTER_THRESHOLD = 0.7
MAX_SENTENCES = 12


@dataclass
class IngestResult:
    accepted: list[int] = field(default_factory=list)  # new article ids
    duplicates: list[dict] = field(default_factory=list)  # {row, title, reason}
    rejected: list[dict] = field(default_factory=list)  # {row, title, reason}
    clustered: int = 0  # new articles that are syndicated copies of an earlier story

    @property
    def summary(self) -> dict:
        return {"accepted": len(self.accepted), "duplicates": len(self.duplicates), "rejected": len(self.rejected),
                "clustered": self.clustered}


class RowError(ValueError):
    """One input row cannot be used; the message says why."""


def parse_published(value, *, default_tz=UTC) -> datetime:
    """ISO 8601, RFC 822 (feeds) or a bare date; naive times are taken in `default_tz`."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value or "").strip()
        if not text:
            raise RowError("the published time is missing")
        moment = parse_datetime(text.replace(" UTC", "+00:00").replace("Z", "+00:00"))
        if moment is None:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                moment = None
        if moment is None:
            day = parse_date(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
            if day is None:
                raise RowError(f"the published time {text[:40]!r} is not a date (use e.g. 2026-11-29T14:30:00Z)")
            moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=default_tz)
    if moment > timezone.now() + timedelta(days=1):
        raise RowError(f"the published time {moment.isoformat()} is in the future")
    return moment


def content_hash(title: str, body: str) -> str:
    return hashlib.sha1(f"{title.lower()}\n{body.lower()}".encode()).hexdigest()


def _clean_row(row: dict, *, default_tz) -> dict:
    title = normalize_text(str(row.get("title") or ""))
    body = normalize_text(str(row.get("body") or ""))
    if not title:
        raise RowError("the title is empty")
    if len(title) > TITLE_MAX:
        raise RowError(f"the title is {len(title)} characters long; the limit is {TITLE_MAX}")
    if len(body) > BODY_MAX:
        raise RowError(f"the body is {len(body):,} characters long; the limit is {BODY_MAX:,}")
    url = str(row.get("url") or "").strip()
    if url:
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError as exc:
            raise RowError(f"the url {url[:60]!r} is not an http(s) address") from exc
        if len(url) > 1000:
            raise RowError("the url is longer than 1,000 characters")
    return {"title": title, "body": body, "url": url,
            "published_at": parse_published(row.get("published_at"), default_tz=default_tz)}


class TickerIndex:
    """Finds the companies a text mentions: cashtags, bare symbols (3+ letters) and names/aliases."""

    # Symbols may hold digits, dots and hyphens (BRK.B, RDS-A); a sentence's final dot is not part of one.
    CASHTAG = re.compile(r"\$([A-Za-z][A-Za-z0-9]*(?:[.\-][A-Za-z0-9]+)*)")

    def __init__(self, companies):
        self.by_symbol = {c.symbol.upper(): c for c in companies}
        names = {}
        for company in companies:
            for name in [company.name, *company.aliases]:
                if name and len(name) >= 3:
                    names[name.lower()] = company
        self.names = names
        self.name_pattern = (
            re.compile(r"(?<![\w$])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                       + r")(?!\w)", re.IGNORECASE) if names else None
        )
        symbols = [s for s in self.by_symbol if len(s) >= 3]
        self.symbol_pattern = re.compile(r"(?<![\w$])(" + "|".join(map(re.escape, symbols)) + r")(?!\w)") \
            if symbols else None

    def find(self, text: str) -> dict[int, tuple[Company, str]]:
        found: dict[int, tuple[Company, str]] = {}
        for match in self.CASHTAG.finditer(text):
            company = self.by_symbol.get(match.group(1).upper())
            if company:
                found.setdefault(company.pk, (company, ArticleTicker.Detection.CASHTAG))
        if self.symbol_pattern:
            for match in self.symbol_pattern.finditer(text):
                company = self.by_symbol[match.group(1)]
                found.setdefault(company.pk, (company, ArticleTicker.Detection.SYMBOL))
        if self.name_pattern:
            for match in self.name_pattern.finditer(text):
                company = self.names[match.group(1).lower()]
                found.setdefault(company.pk, (company, ArticleTicker.Detection.NAME))
        return found

    def mentions(self, title: str, body: str) -> list[tuple[Company, float, str]]:
        """(company, relevance, how) for each company: 1.0 when named in the title, 0.5 in the body only."""
        in_title = self.find(title)
        in_body = self.find(body)
        out = [(company, 1.0, how) for company, how in in_title.values()]
        out += [(company, 0.5, how) for pk, (company, how) in in_body.items() if pk not in in_title]
        return out


def articles_ingest(*, source: Source, rows: list[dict], default_tz=UTC) -> IngestResult:
    """Validate and store articles, once each; detect tickers; cluster syndicated copies; queue scoring.

    Each row: title, body, url, published_at. Rows that cannot be used are returned with the
    reason; nothing is written for them, and the rest are written in one transaction.
    """
    result = IngestResult()
    cleaned: list[tuple[int, dict]] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        try:
            clean = _clean_row(row, default_tz=default_tz)
        except RowError as exc:
            result.rejected.append({"row": number, "title": str(row.get("title") or "")[:200], "reason": str(exc)})
            continue
        clean["content_hash"] = content_hash(clean["title"], clean["body"])
        if clean["content_hash"] in seen:
            result.duplicates.append({"row": number, "title": clean["title"][:200],
                                      "reason": f"same article as row {seen[clean['content_hash']]}"})
            continue
        seen[clean["content_hash"]] = number
        cleaned.append((number, clean))

    existing = set(Article.objects.filter(content_hash__in=list(seen)).values_list("content_hash", flat=True))
    fresh = []
    for number, clean in cleaned:
        if clean["content_hash"] in existing:
            result.duplicates.append({"row": number, "title": clean["title"][:200],
                                      "reason": "already loaded earlier"})
        else:
            fresh.append(clean)
    if not fresh:
        return result

    index = TickerIndex(list(Company.objects.all()))
    with transaction.atomic():
        articles = Article.objects.bulk_create([Article(source=source, **clean) for clean in fresh])
        ArticleTicker.objects.bulk_create([
            ArticleTicker(article=article, company=company, relevance=relevance, detected_by=how)
            for article in articles
            for company, relevance, how in index.mentions(article.title, article.body)
        ], ignore_conflicts=True)
        result.clustered = _cluster(articles)
        ids = [a.pk for a in articles]
        articles_score_enqueue(article_ids=ids)  # ledger rows commit with the articles; messages go after
    if not transaction.get_connection().in_atomic_block:
        # Committed: unscored headlines show on the pages now (in a caller's transaction, the scores bump).
        _generation_bump(companies=_mentioned(ids))
    result.accepted = ids
    return result


def _cluster(new_articles: list[Article]) -> int:
    """Fold new articles into near-duplicate stories published within a few days of them.

    The earliest article of a story leads it, even when a copy arrives before the original (wires
    are loaded in any order): a leader that turns out to be later than a new copy hands over its
    copies. Returns how many articles became copies.
    """
    start = min(a.published_at for a in new_articles) - CLUSTER_WINDOW
    end = max(a.published_at for a in new_articles) + CLUSTER_WINDOW
    pool = list(Article.objects.filter(published_at__range=(start, end)).order_by("published_at", "id")
                .only("id", "title", "published_at", "cluster_leader_id"))
    # Syndicated copies share the headline far more than the body, which wires rewrite: word sets of
    # titles at Jaccard >= 0.7 catch "X to buy Y for $3bn" / "X agrees to buy Y for $3bn - report".
    leaders = near_duplicate_clusters([a.title for a in pool], threshold=CLUSTER_THRESHOLD, shingle=1)
    new_ids = {a.pk for a in new_articles}
    touched = {leaders[i] for i, article in enumerate(pool) if article.pk in new_ids}
    updates, handed_over, became_copies = [], {}, 0
    for i, article in enumerate(pool):
        if leaders[i] not in touched:
            continue
        head = pool[leaders[i]]
        wanted = head.cluster_leader_id or head.pk
        wanted = None if wanted == article.pk else wanted
        if article.cluster_leader_id != wanted:
            if article.cluster_leader_id is None:
                became_copies += 1
                handed_over[article.pk] = wanted
            article.cluster_leader_id = wanted
            updates.append(article)
    Article.objects.bulk_update(updates, ["cluster_leader"])
    for old_leader, new_leader in handed_over.items():
        Article.objects.filter(cluster_leader_id=old_leader).update(cluster_leader_id=new_leader)
    if updates:  # a scored story's leader became a copy, or the reverse; the leaders' source counts changed
        finance_data_changed(article_ids={article.pk for article in updates}
                             | {article.cluster_leader_id for article in updates if article.cluster_leader_id})
    return became_copies


def articles_score_enqueue(*, article_ids: list[int], batch: int = SCORE_BATCH) -> None:
    """Queue scoring in batches, each a task-ledger run: sent after commit, re-sent if the broker loses it."""
    with transaction.atomic():
        for start in range(0, len(article_ids), batch):
            task_run_enqueue(task="finance.score_articles", args=[article_ids[start : start + batch]])


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“A-Z0-9$])")


def finance_data_changed(*, article_ids: Iterable[int] = (), companies: Iterable[Company] = (),
                          tickers: Iterable[Company] = ()) -> None:
    """Call from every service that writes articles, mentions, scores, companies or prices, in its transaction.

    `article_ids`: articles whose scores, mentions or story changed; `companies`: companies whose sector changed;
    `tickers`: other companies whose page changed (a mention taken off, a new name). Their sentiment rollup days
    are marked dirty now; once the transaction commits, the finance data generation is bumped (no dashboard cached
    before the change is served after it), and so are the page generations of the companies the articles mention
    (before or after the change) and of `companies` and `tickers`. A call naming nothing (prices, a new model)
    changes every company's page.
    """
    article_ids, companies, tickers = list(article_ids), list(companies), list(tickers)
    rollup_mark_articles(article_ids)
    rollup_mark_companies(companies)
    if not (article_ids or companies or tickers):
        transaction.on_commit(lambda: _generation_bump(everything=True))
        return
    named = {company.pk for company in [*companies, *tickers]} | _mentioned(article_ids)
    transaction.on_commit(lambda: _generation_bump(companies=named | _mentioned(article_ids)))


def _mentioned(article_ids: list[int]) -> set[int]:
    return set(ArticleTicker.objects.filter(article_id__in=article_ids).values_list("company_id", flat=True)) \
        if article_ids else set()


def _generation_bump(*, companies: Iterable[int] = (), everything: bool = False) -> None:
    """The data generation (every page) and the page generations of `companies`, or of all (`everything`)."""
    keys = [DATA_GENERATION_KEY, *([PAGES_EPOCH_KEY] if everything else []),
            *(COMPANY_GENERATION_KEY.format(pk) for pk in companies)]
    for key in keys:
        try:
            cache.incr(key)
        except ValueError:  # never set or evicted: readers start a fresh one themselves
            pass


def article_sentences(article: Article) -> list[str]:
    """The title (a sentence of its own) and the body's first sentences."""
    body = [s.strip() for s in SENTENCE_END.split(article.body) if s.strip()] if article.body else []
    return [article.title, *body[: MAX_SENTENCES - 1]]


def articles_score(*, article_ids: list[int]) -> int:
    """Score articles with the active sentiment version; safe to run twice. Returns how many were scored."""
    version = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    done = set(ArticleSentiment.objects.filter(article_id__in=article_ids, model_version=version)
               .values_list("article_id", flat=True))
    articles = list(Article.objects.filter(pk__in=article_ids).exclude(pk__in=done))
    if not articles:
        return 0
    sentences = [article_sentences(a) for a in articles]
    flat = [s for group in sentences for s in group]
    predictions = iter(ml.predict(ml.Task.FINANCE_SENTIMENT, flat, version=version))
    rows = []
    for article, group in zip(articles, sentences, strict=True):
        scored = [next(predictions) for _ in group]
        # The title counts twice: it is what the story is about.
        weights = [2.0] + [1.0] * (len(group) - 1)
        total = sum(weights)
        mean = {label: sum(w * p["scores"][label] for w, p in zip(weights, scored, strict=True)) / total
                for label in ("positive", "neutral", "negative")}
        rows.append(ArticleSentiment(
            article=article, model_version=version, label=max(mean, key=mean.get),
            p_positive=mean["positive"], p_neutral=mean["neutral"], p_negative=mean["negative"],
            score=max(-1.0, min(1.0, mean["positive"] - mean["negative"])),
            sentences=[{"text": text[:300], "label": p["label"],
                        "score": p["scores"]["positive"] - p["scores"]["negative"]}
                       for text, p in zip(group, scored, strict=True)],
        ))
    with transaction.atomic():
        ArticleSentiment.objects.bulk_create(rows, ignore_conflicts=True)
        finance_data_changed(article_ids=[row.article_id for row in rows])
    return len(rows)


def articles_rescore_all(*, batch: int = SCORE_BATCH) -> int:
    """Queue scoring of every article the active sentiment version has not read yet (after an activation)."""
    version = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    unread = Article.objects.exclude(sentiments__model_version=version).order_by("pk")
    missing = list(unread.values_list("pk", flat=True))
    articles_score_enqueue(article_ids=missing, batch=batch)
    return len(missing)
