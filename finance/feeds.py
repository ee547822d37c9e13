"""RSS/Atom news feeds: read a feed (an uploaded file or a URL polled on the beat schedule) into articles."""

import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from html import unescape

import feedparser
from django.db import transaction
from django.utils import timezone

from core.services import task_run_enqueue
from finance.models import IngestRun, Source
from finance.services import articles_ingest, ingest_run_record, source_for
from mlcore.data import DataError

FEED_MAX_BYTES = 10 * 1024 * 1024
FETCH_TIMEOUT = 20
USER_AGENT = "Parlance feed reader (+https://parlance.invalid)"
_TAGS = re.compile(r"<[^>]+>")
_ROOT_TAG = re.compile(rb"<(?![?!])([A-Za-z_][\w:.-]*)")


def _plain(html: str) -> str:
    return " ".join(unescape(_TAGS.sub(" ", html or "")).split())


def feed_entries(*, data: bytes, name: str) -> list[dict]:
    """Articles ({title, body, url, published_at}) from RSS 0.9x/1.0/2.0 or Atom bytes.

    Raises DataError when the bytes are not a feed at all; entries without a date keep None and are
    reported per row by the ingestion.
    """
    if not data.strip():
        raise DataError(f"{name} is empty.")
    if len(data) > FEED_MAX_BYTES:
        raise DataError(f"{name} is {len(data) / 1e6:.1f} MB; feeds up to {FEED_MAX_BYTES // 10**6} MB are read.")
    parsed = feedparser.parse(data)
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        reason = getattr(parsed, "bozo_exception", None)
        raise DataError(f"{name} is not an RSS or Atom feed" + (f" ({reason})." if reason else "."))
    root = _ROOT_TAG.search(data)
    if parsed.bozo and root and not re.search(rb"</" + re.escape(root.group(1)) + rb"\s*>\s*\Z", data):
        # The lenient parser would keep the entries of a cut-off feed, the last one cut short: load none.
        raise DataError(f"{name} looks truncated: it ends before the closing </{root.group(1).decode()}> tag. "
                        "Nothing was loaded; try again when the whole feed can be read.")
    rows = []
    for entry in parsed.entries:
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        body = entry.get("summary") or ""
        if not body and entry.get("content"):
            body = entry["content"][0].get("value", "")
        rows.append({
            "title": _plain(entry.get("title", "")),
            "body": _plain(body),
            "url": entry.get("link", ""),
            "published_at": datetime(*when[:6], tzinfo=UTC) if when else None,
        })
    return rows


def feed_upload(*, source_name: str, user, data: bytes, filename: str) -> IngestRun:
    """Load an uploaded feed file into a source and record the run."""
    rows = feed_entries(data=data, name=filename)
    with transaction.atomic():
        source = source_for(name=source_name, kind=Source.Kind.FEED)
        result = articles_ingest(source=source, rows=rows)
        return ingest_run_record(source=source, user=user, via=IngestRun.Via.FEED, filename=filename, result=result)


def fetch(url: str) -> bytes:
    """GET a feed with a timeout and a size cap; DataError with the reason on any failure."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/rss+xml, "
                                                   "application/atom+xml, application/xml, text/xml, */*"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 (http(s) only, below)
            data = response.read(FEED_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url} answered HTTP {exc.code} {exc.reason}.") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(f"{url} could not be reached: {getattr(exc, 'reason', exc)}.") from exc
    return data


def feed_poll(*, source: Source, user=None) -> IngestRun:
    """Read a source's feed URL now; the run records what was new. Polling twice adds nothing twice.

    `user` is the analyst who asked (None for the beat schedule)."""
    if not source.feed_url.startswith(("http://", "https://")):
        raise DataError(f"{source.name} has no http(s) feed address.")
    rows = feed_entries(data=fetch(source.feed_url), name=source.feed_url)
    with transaction.atomic():
        result = articles_ingest(source=source, rows=rows)
        run = ingest_run_record(source=source, user=user, via=IngestRun.Via.FEED, filename=source.feed_url[:255],
                                result=result)
        Source.objects.filter(pk=source.pk).update(feed_polled_at=timezone.now(), feed_error="")
    return run


def feed_source_save(*, name: str, feed_url: str) -> Source:
    """Create a feed source, or give an existing source of that name (any case) this feed address."""
    source = Source.objects.filter(name__iexact=name.strip()).first()
    if source is None:
        return Source.objects.create(name=name.strip(), kind=Source.Kind.FEED, feed_url=feed_url)
    Source.objects.filter(pk=source.pk).update(feed_url=feed_url, feed_error="")
    source.refresh_from_db()
    return source


def feed_poll_failed(*, source: Source, error: str) -> None:
    Source.objects.filter(pk=source.pk).update(feed_polled_at=timezone.now(), feed_error=error[:500])


def feed_sources():
    return Source.objects.exclude(feed_url="").order_by("name")


def feed_polls_enqueue() -> int:
    """Queue one poll per source that has a feed address (in the task ledger, so a lost poll is redone)."""
    ids = list(feed_sources().values_list("pk", flat=True))
    with transaction.atomic():
        for source_id in ids:
            task_run_enqueue(task="finance.poll_feed", args=[source_id])
    return len(ids)
