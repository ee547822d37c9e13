"""Bad feeds (tests/badinput) as uploaded files, polled from a real loopback HTTP server, and pushed via the API.

A feed that is not a feed, is cut short or is binary loads nothing and says why; entity tricks (billion laughs,
external entities) are never expanded; HTML in entries never reaches a page unescaped.
"""

import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from core.roles import Role
from finance import feeds
from finance.models import Article, IngestRun, Source
from finance.tasks import poll_feed
from tests.badinput import HTML_ESCAPED, HTML_PAYLOADS, one_mb_line, read

pytestmark = pytest.mark.django_db

# file -> words the refusal names
FEED_REFUSED = {
    "feed_truncated.xml": "looks truncated: it ends before the closing </rss> tag",
    "feed_not_xml.xml": "is not an RSS or Atom feed",
    "feed_html_page.xml": "is not an RSS or Atom feed",
    "png_as.csv": "is not an RSS or Atom feed",
    "zip_as.csv": "is not an RSS or Atom feed",
    "csv_nul_bytes.csv": "is not an RSS or Atom feed",
    "empty.txt": "is empty",
    "whitespace.txt": "is not an RSS or Atom feed",
    "one_mb_line": "is not an RSS or Atom feed",
}


def body_of(name: str) -> bytes:
    return one_mb_line() if name == "one_mb_line" else read(name)


def counts() -> tuple[int, int]:
    return Article.objects.count(), IngestRun.objects.count()


@pytest.fixture
def analyst(client, make_user):
    client.force_login(make_user(Role.ANALYST))
    return client


@pytest.fixture
def bad_feed_server():
    """A real HTTP server on loopback serving each corpus file at /<name>."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = body_of(self.path.lstrip("/"))
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def feed_upload(client, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("finance:feeds"), {"action": "upload", "source": "Bad Feed",
                                                  "file": SimpleUploadedFile(f"{name}.xml", body_of(name))})


@pytest.mark.parametrize("name", list(FEED_REFUSED))
def test_feed_upload_refused_with_reason(analyst, name):
    before = counts()
    response = feed_upload(analyst, name)
    assert response.status_code == 400
    assert FEED_REFUSED[name] in html.unescape(response.content.decode())
    assert counts() == before
    assert not Source.objects.filter(name="Bad Feed").exists()


@pytest.mark.parametrize("name", ["feed_truncated.xml", "feed_not_xml.xml", "feed_html_page.xml", "png_as.csv",
                                  "one_mb_line"])
def test_feed_poll_of_a_bad_feed_keeps_the_reason_and_loads_nothing(analyst, bad_feed_server, name):
    source = feeds.feed_source_save(name="Polled", feed_url=f"{bad_feed_server}/{name}")
    before = counts()
    response = analyst.post(reverse("finance:feed_poll", args=[source.pk]), follow=True)
    # The poll button redirects back to the feeds page, which shows why the poll failed.
    assert response.status_code == 200 and response.redirect_chain[-1][0] == reverse("finance:feeds")
    assert FEED_REFUSED[name] in html.unescape(response.content.decode())
    source.refresh_from_db()
    assert FEED_REFUSED[name] in source.feed_error
    assert counts() == before


def test_feed_poll_task_of_a_truncated_feed_records_the_error(bad_feed_server):
    source = feeds.feed_source_save(name="Polled", feed_url=f"{bad_feed_server}/feed_truncated.xml")
    result = poll_feed.apply(args=[source.pk]).get()
    assert FEED_REFUSED["feed_truncated.xml"] in result["error"]
    assert counts() == (0, 0)


@pytest.mark.parametrize(("name", "secret"), [("feed_billion_laughs.xml", "lollollol"),
                                              ("feed_xxe.xml", "root:")])
def test_feed_entities_are_never_expanded(analyst, name, secret):
    started = time.monotonic()
    response = feed_upload(analyst, name)
    assert time.monotonic() - started < 10
    assert response.status_code == 302  # the entity reference stays as written: one article, nothing expanded
    assert Article.objects.count() == 1
    for article in Article.objects.all():
        assert secret not in article.title and secret not in article.body
        assert len(article.title) < 100


def test_feed_html_in_entries_is_stripped_or_escaped(analyst):
    response = feed_upload(analyst, "feed_html_payloads.xml")
    assert response.status_code == 302
    run = IngestRun.objects.get()
    # The entry links to javascript: -- refused, with the reason, not dropped in silence.
    assert (run.accepted, run.rejected) == (0, 1)
    assert "is not an http(s) address" in run.problems[0]["reason"]
    page = analyst.get(reverse("finance:ingest_run", args=[run.pk])).content.decode()
    assert "<script>alert(1)" not in page and 'href="javascript:' not in page


# --- JSON API push --------------------------------------------------------------------------------

PUSH_URL = "/api/v1/finance/articles/"


def article(**fields):
    return {"title": "Norvale Bank profit rose", "body": "Profit rose.", "url": "https://news.example/p1",
            "published_at": "2026-03-02T10:00:00Z", **fields}


@pytest.mark.parametrize(("payload", "content_type", "message"), [
    (b'{"source": "API", "articles": [{"title": "cut', "application/json", "JSON parse error"),
    (read("png_as.csv"), "application/json", "JSON parse error"),
    (b"", "application/json", "source"),
    (json.dumps([1, 2]).encode(), "application/json", "Invalid data"),
    (json.dumps({"source": "API", "articles": "nope"}).encode(), "application/json", "list"),
    (json.dumps({"source": "API", "articles": [42]}).encode(), "application/json", "Invalid data"),
    (json.dumps({"source": "API", "articles": [article(title="Norvale\x00Bank")]}).encode(), "application/json",
     "Null characters are not allowed"),
    (json.dumps({"source": "\x00", "articles": [article()]}).encode(), "application/json",
     "Null characters are not allowed"),
    (json.dumps({"source": "API", "timezone": "Mars/Olympus", "articles": [article()]}).encode(),
     "application/json", "is not a time zone"),
    (read("csv_formula_payloads.csv"), "text/csv", "Unsupported media type"),
], ids=["truncated-json", "png", "empty", "not-an-object", "articles-not-list", "article-not-object", "nul-title",
        "nul-source", "bad-zone", "csv-body"])
def test_api_push_of_malformed_bodies_is_a_400_naming_the_problem(client, make_user, payload, content_type, message):
    client.force_login(make_user(Role.ANALYST))
    response = client.post(PUSH_URL, payload, content_type=content_type)
    assert response.status_code in (400, 415)
    assert message in response.content.decode()
    assert counts() == (0, 0) and not Source.objects.exists()


def test_api_push_reports_each_refused_article_and_stores_the_rest(client, make_user):
    client.force_login(make_user(Role.ANALYST))
    articles = [
        article(),
        article(title="", url="https://news.example/p2"),
        article(title="x" * 100_000, url="https://news.example/p3"),
        article(title="Kestrel", url="javascript:alert(1)"),
        article(title="Halvorsen", published_at="yesterday-ish"),
        article(title=f"{HTML_PAYLOADS[0]} {HTML_PAYLOADS[1]} 📱\u202eevil\u202c", url="https://news.example/p6"),
    ]
    response = client.post(PUSH_URL, {"source": "API", "articles": articles}, content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 4)
    assert sorted(p["row"] for p in body["problems"]) == [2, 3, 4, 5]
    assert all(p["reason"] for p in body["problems"])
    assert Article.objects.count() == 2
    stored = Article.objects.get(url="https://news.example/p6")
    content = client.get(reverse("finance:article", args=[stored.pk])).content.decode()
    for raw, escaped in zip(HTML_PAYLOADS, HTML_ESCAPED, strict=True):
        assert raw not in content and escaped in content
