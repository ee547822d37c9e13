"""State changes of finance: ingesting articles, detecting tickers, scoring sentiment."""

import csv
import hashlib
import io
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from finance.models import Article, ArticleSentiment, ArticleTicker, Company, IngestRun, Source
from mlcore import api as ml
from mlcore.data import DataError, decode_text, near_duplicate_clusters, normalize_text

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

    CASHTAG = re.compile(r"\$([A-Za-z]{1,6})\b")

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
        transaction.on_commit(lambda: articles_score_enqueue(article_ids=ids))
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
    return became_copies


def articles_score_enqueue(*, article_ids: list[int]) -> None:
    for start in range(0, len(article_ids), SCORE_BATCH):
        current_app.send_task("finance.score_articles", args=[article_ids[start : start + SCORE_BATCH]])


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“A-Z0-9$])")


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
    ArticleSentiment.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def articles_rescore_all(*, batch: int = SCORE_BATCH) -> int:
    """Queue scoring of every article the active sentiment version has not read yet (after an activation)."""
    version = ml.active_version(task=ml.Task.FINANCE_SENTIMENT)
    unread = Article.objects.exclude(sentiments__model_version=version).order_by("pk")
    missing = list(unread.values_list("pk", flat=True))
    for start in range(0, len(missing), batch):
        current_app.send_task("finance.score_articles", args=[missing[start : start + batch]])
    return len(missing)


# CSV uploads, API pushes and the record of each load

CSV_MAX_BYTES = 20 * 1024 * 1024
CSV_FIELDS = ("title", "body", "url", "published_at")
CSV_EXAMPLE_HEADER = "title,body,url,published_at"
_CSV_DELIMITERS = ",;\t|"
_CSV_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Header names that say which column holds which field, most telling first. Matched as whole names, then as
# words of a name ("news_headline"); the body's names are the vaguest, so it is matched last.
_CSV_COLUMN_NAMES = {
    "title": ("title", "headline", "headlines", "heading", "subject"),
    "url": ("url", "link", "href", "permalink", "uri"),
    "published_at": ("published_at", "published", "publishedat", "pubdate", "pub_date", "published_on",
                     "publication_date", "date", "datetime", "time", "timestamp"),
    "body": ("body", "summary", "text", "content", "description", "snippet", "abstract", "lead"),
}
# A first row holding a web address, a date or a number is data, not a header.
_LOOKS_LIKE_VALUE = re.compile(r"https?://\S+|\d{4}-\d{2}-\d{2}.*|\d{1,2}[./]\d{1,2}[./]\d{2,4}.*|[+-]?[\d.,]+")
_SAME_AS_ROW = re.compile(r"same article as row (\d+)")
PENDING_UPLOAD_MAX_AGE = timedelta(days=1)
_PENDING_TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass
class CsvPreview:
    filename: str
    delimiter: str
    header: list[str]  # unique names; a blank or repeated one is named after its position
    rows: list[list[str]]  # the first rows, each cut or padded to the header's length
    total_rows: int
    ragged_rows: int  # rows with another number of fields than the header, or unreadable: they will be rejected
    guess: dict[str, str | None]  # field -> the column that seems to hold it
    row_numbers: list[int] = field(default_factory=list)  # of `rows`, as a spreadsheet shows them (header = 1)
    row_notes: list[str] = field(default_factory=list)  # of `rows`: why one will be rejected, else ""

    @property
    def delimiter_name(self) -> str:
        return _CSV_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    @property
    def numbered_rows(self) -> list[tuple[int, list[str], str]]:
        return list(zip(self.row_numbers, self.rows, self.row_notes, strict=True))


@dataclass
class CsvRows:
    rows: list[dict]  # {row, title, body, url, published_at}; row is the row a spreadsheet shows (header = 1)
    problems: list[dict] = field(default_factory=list)  # {row, title, reason}: rows that could not be read


def csv_preview(*, data: bytes, filename: str, limit: int = 10) -> CsvPreview:
    """Read a news CSV far enough to show it: delimiter, header, first rows and a guess of which column is which.

    Raises DataError for a file that is too large, empty, binary, has no header row or no row under it.
    """
    delimiter, header, records = _csv_open(data, filename=filename)
    preview = CsvPreview(filename=filename, delimiter=delimiter, header=header, rows=[], total_rows=0,
                         ragged_rows=0, guess=csv_guess_columns(header))
    for number, fields, reason in records:
        preview.total_rows += 1
        reason = reason or _csv_ragged(fields, header)
        preview.ragged_rows += bool(reason)
        if len(preview.rows) < limit:
            preview.rows.append(((fields or []) + [""] * len(header))[: len(header)])
            preview.row_numbers.append(number)
            preview.row_notes.append(reason)
    if not preview.total_rows:
        raise DataError(f"{filename} has a header but no rows under it.")
    return preview


def csv_guess_columns(header: list[str]) -> dict[str, str | None]:
    """Which column seems to hold each field (title, body, url, published_at), from the header's names."""
    keys = [re.sub(r"[\s\-]+", "_", name.strip().casefold()) for name in header]
    found: dict[str, int] = {}
    for words_too in (False, True):
        for wanted_field, names in _CSV_COLUMN_NAMES.items():
            if wanted_field in found:
                continue
            for name in names:
                position = next((i for i, key in enumerate(keys) if i not in found.values()
                                 and (key == name or (words_too and name in key.split("_")))), None)
                if position is not None:
                    found[wanted_field] = position
                    break
    return {name: header[found[name]] if name in found else None for name in CSV_FIELDS}


def csv_rows(*, data: bytes, filename: str, mapping: dict[str, str]) -> CsvRows:
    """The articles of a news CSV as rows for `articles_ingest`, by `mapping` (field -> column name).

    Rows that cannot be read as CSV, or have another number of fields than the header, are not guessed at:
    they come back in `problems` with their row and the reason. Without a published_at column every
    article is dated at the time of the import.
    """
    _, header, records = _csv_open(data, filename=filename)
    positions = {}
    for name in CSV_FIELDS:
        column = mapping.get(name)
        if column:
            if column not in header:
                raise DataError(f"{filename} has no column “{column}”. Its columns are: {', '.join(header)}.")
            positions[name] = header.index(column)
    if "title" not in positions:
        raise DataError("Choose the column that holds the title.")
    imported_at = timezone.now()
    table = CsvRows(rows=[])
    for number, fields, reason in records:
        title = fields[positions["title"]] if fields and positions["title"] < len(fields) else ""
        reason = reason or _csv_ragged(fields, header)
        if reason:
            table.problems.append({"row": number, "title": normalize_text(title)[:200], "reason": reason})
            continue
        row = {name: fields[position] for name, position in positions.items()}
        row.setdefault("published_at", imported_at)
        table.rows.append({"row": number, **row})
    if not table.rows and not table.problems:
        raise DataError(f"{filename} has a header but no rows under it.")
    return table


def ingest_run_record(*, source: Source, user, via: str, filename: str, result: IngestResult,
                      structural_problems: list[dict] | None = None) -> IngestRun:
    """Record one load: its counts, and each duplicate and rejected row with its row number and reason.

    `structural_problems` are rows that never reached `articles_ingest` (unreadable CSV rows); they count
    as rejected.
    """
    structural_problems = structural_problems or []
    problems = [{**p, "kind": "rejected"} for p in [*structural_problems, *result.rejected]]
    problems += [{**p, "kind": "duplicate"} for p in result.duplicates]
    problems.sort(key=lambda p: p["row"])
    rejected = len(result.rejected) + len(structural_problems)
    return IngestRun.objects.create(
        user=user if user is not None and user.is_authenticated else None, source=source, via=via,
        filename=filename[:255], rows=len(result.accepted) + len(result.duplicates) + rejected,
        accepted=len(result.accepted), duplicates=len(result.duplicates), rejected=rejected,
        clustered=result.clustered, problems=problems,
    )


def articles_upload(*, source_name: str, user, data: bytes, filename: str, mapping: dict[str, str],
                    default_tz=UTC) -> IngestRun:
    """Load a news CSV into a source (made, of kind CSV, when the name is new) and record the run.

    `mapping` names the column of each field; naive published times are taken in `default_tz`.
    """
    table = csv_rows(data=data, filename=filename, mapping=mapping)
    numbers = [row["row"] for row in table.rows]
    with transaction.atomic():
        source = _source_for(name=source_name, kind=Source.Kind.CSV)
        result = articles_ingest(source=source, rows=table.rows, default_tz=default_tz)
        result.rejected = _renumbered(result.rejected, numbers)
        result.duplicates = _renumbered(result.duplicates, numbers)
        return ingest_run_record(source=source, user=user, via=IngestRun.Via.CSV, filename=filename, result=result,
                                 structural_problems=table.problems)


def articles_push(*, source_name: str, user, articles: list[dict], default_tz=UTC) -> IngestRun:
    """Load articles sent to the JSON API into a source (made, of kind API, when new) and record the run.

    Row numbers in the run's problems are places in `articles`, from 1.
    """
    with transaction.atomic():
        source = _source_for(name=source_name, kind=Source.Kind.API)
        result = articles_ingest(source=source, rows=articles, default_tz=default_tz)
        return ingest_run_record(source=source, user=user, via=IngestRun.Via.API, filename="", result=result)


def pending_upload_save(*, data: bytes, user) -> str:
    """Keep an uploaded file of `user`'s until its columns are confirmed; returns the token that names it.

    Kept files older than PENDING_UPLOAD_MAX_AGE are removed on the way.
    """
    folder = _pending_folder()
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = (timezone.now() - PENDING_UPLOAD_MAX_AGE).timestamp()
    for old in folder.glob("*.csv"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:
            pass
    token = uuid.uuid4().hex
    (folder / f"{user.pk}-{token}.csv").write_bytes(data)
    return token


def pending_upload_read(*, token: str, user) -> bytes | None:
    """The bytes of `user`'s kept upload `token`; None when it is unknown, someone else's, used or too old."""
    path = _pending_path(token=token, user=user)
    try:
        if path is None or path.stat().st_mtime < (timezone.now() - PENDING_UPLOAD_MAX_AGE).timestamp():
            return None
        return path.read_bytes()
    except FileNotFoundError:
        return None


def pending_upload_discard(*, token: str, user) -> None:
    """Remove `user`'s kept upload `token`, if it is there."""
    path = _pending_path(token=token, user=user)
    if path is not None:
        path.unlink(missing_ok=True)


def _pending_folder() -> Path:
    return Path(settings.VAR_DIR) / "uploads" / "finance"


def _pending_path(*, token: str, user) -> Path | None:
    # The owner is part of the file name, so a token alone never opens another user's file.
    if not isinstance(token, str) or not _PENDING_TOKEN.fullmatch(token) or not user.is_authenticated:
        return None
    return _pending_folder() / f"{user.pk}-{token}.csv"


def _source_for(*, name: str, kind: str) -> Source:
    name = " ".join(name.split())[:200]
    if not name:
        raise DataError("Name the source the articles come from.")
    return Source.objects.filter(name__iexact=name).first() or Source.objects.create(name=name, kind=kind)


def _renumbered(problems: list[dict], numbers: list[int]) -> list[dict]:
    """articles_ingest numbers rows by their place in the list it got; give each its row in the file instead."""
    def in_file(match):
        return f"same article as row {numbers[int(match.group(1)) - 1]}"

    return [{**p, "row": numbers[p["row"] - 1], "reason": _SAME_AS_ROW.sub(in_file, p["reason"])} for p in problems]


def _csv_open(data: bytes, *, filename: str):
    """Check the size, decode, choose the delimiter and read the header row.

    Returns (delimiter, header, records), `records` yielding (row, fields, reason) for each non-blank
    row under the header; fields is None (and reason says why) for a row that is not valid CSV.
    """
    if len(data) > CSV_MAX_BYTES:
        raise DataError(f"{filename} is {filesizeformat(len(data))}; the limit is {filesizeformat(CSV_MAX_BYTES)}. "
                        "Split it into smaller files.")
    text = decode_text(data, filename=filename)
    delimiter = _csv_delimiter(text)
    records = (record for record in _csv_records(text, delimiter=delimiter, filename=filename)
               if record[1] is None or any(value.strip() for value in record[1]))
    first = next(records, None)
    if first is None:
        raise DataError(f"{filename} is empty.")
    number, fields, reason = first
    if fields is None:
        raise DataError(f"{filename}, row {number}: the header row {reason}.")
    names = [value.strip() for value in fields]
    if not any(csv_guess_columns(names).values()):
        value = next((name for name in names if len(name) > 60 or _LOOKS_LIKE_VALUE.fullmatch(name)), None)
        if value is not None:
            raise DataError(f"{filename} does not start with a header row: its first row holds values such as "
                            f"“{value[:40]}”. Add a first row that names the columns, e.g. {CSV_EXAMPLE_HEADER}")
    header = []
    for position, name in enumerate(names, start=1):
        header.append(name if name and name not in header else f"{name or 'column'} ({position})")
    return delimiter, header, records


def _csv_ragged(fields: list[str], header: list[str]) -> str:
    """Why a row does not fit under the header, or ""."""
    if len(fields) == len(header):
        return ""
    hint = "a value that holds the delimiter needs quotes" if len(fields) > len(header) else "a delimiter is missing"
    return f"has {len(fields)} fields, the header has {len(header)} ({hint})"


def _csv_delimiter(text: str) -> str:
    """The delimiter whose header names a known column, else the one the sniffer finds, else a comma."""
    sample = text[:16384]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS).delimiter
    except csv.Error:
        sniffed = ","
    candidates = [sniffed] + [d for d in _CSV_DELIMITERS if d != sniffed]
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    for delimiter in candidates:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        if len(header) > 1 and any(csv_guess_columns(header).values()):
            return delimiter
    return sniffed


def _csv_records(text: str, *, delimiter: str, filename: str):
    """(row, fields, reason) for each CSV record; rows are numbered as a spreadsheet shows them, from 1."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = last_line = 0
    while True:
        number += 1
        first_line = last_line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if reader.line_num > first_line:
                raise DataError(
                    f"{filename}, row {number}: a quoted value that starts here is not closed ({error}), so the rows "
                    "after it cannot be read. Check the quotes in that row."
                ) from error
            last_line = reader.line_num
            yield number, None, f"could not be read as CSV ({error}); check its quotes"
            continue
        last_line = reader.line_num
        yield number, fields, ""
