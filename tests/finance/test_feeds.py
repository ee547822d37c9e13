"""RSS/Atom feeds: files, polling a real HTTP server on loopback, and the feeds page."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.roles import Role
from finance import feeds
from finance.models import Article, IngestRun, Source
from finance.tasks import poll_feed, poll_feeds
from mlcore.data import DataError

pytestmark = pytest.mark.django_db

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbor Wire</title><link>https://harbor.example/</link>
<item><title>Norvale Bank profit jumps 18%</title><link>https://harbor.example/1</link>
  <description>&lt;p&gt;Norvale said &lt;b&gt;loans&lt;/b&gt; grew.&lt;/p&gt;</description>
  <pubDate>Mon, 02 Nov 2026 14:30:00 GMT</pubDate></item>
<item><title>Kestrel Air cuts guidance</title><link>https://harbor.example/2</link>
  <description>Fuel costs bite.</description><pubDate>Tue, 03 Nov 2026 09:00:00 +0100</pubDate></item>
<item><title>Undated note</title><link>https://harbor.example/3</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Tickerline</title><id>urn:x</id><updated>2026-11-03T10:00:00Z</updated>
<entry><title>Halvorsen Mining halts Chile mine</title><id>urn:1</id><link href="https://tickerline.example/a"/>
  <updated>2026-11-03T10:00:00Z</updated><summary>Output stops for two weeks.</summary></entry>
</feed>"""


def test_rss_entries_become_plain_articles():
    rows = feeds.feed_entries(data=RSS, name="harbor.xml")
    assert [r["title"] for r in rows] == ["Norvale Bank profit jumps 18%", "Kestrel Air cuts guidance", "Undated note"]
    assert rows[0]["body"] == "Norvale said loans grew."
    assert rows[0]["published_at"].isoformat() == "2026-11-02T14:30:00+00:00"
    assert rows[1]["published_at"].isoformat() == "2026-11-03T08:00:00+00:00"
    assert rows[2]["published_at"] is None


def test_atom_entries_are_read():
    [row] = feeds.feed_entries(data=ATOM, name="t.atom")
    assert row == {"title": "Halvorsen Mining halts Chile mine", "body": "Output stops for two weeks.",
                   "url": "https://tickerline.example/a", "published_at": row["published_at"]}
    assert row["published_at"].isoformat() == "2026-11-03T10:00:00+00:00"


@pytest.mark.parametrize(("data", "message"), [
    (b"", "is empty"), (b"<html><body>Not a feed</body></html>", "is not an RSS or Atom feed"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is not an RSS or Atom feed"),
])
def test_things_that_are_not_feeds_are_refused(data, message):
    with pytest.raises(DataError, match=message):
        feeds.feed_entries(data=data, name="x.xml")


def test_a_feed_file_loads_once_and_reports_the_undated_entry(make_user, companies):
    analyst = make_user(Role.ANALYST)
    run = feeds.feed_upload(source_name="Harbor Wire", user=analyst, data=RSS, filename="harbor.xml")
    assert (run.accepted, run.rejected, run.duplicates) == (2, 1, 0)
    assert run.problems[0]["reason"] == "the published time is missing"
    again = feeds.feed_upload(source_name="harbor wire", user=analyst, data=RSS, filename="harbor.xml")
    assert (again.accepted, again.duplicates) == (0, 2)
    assert Source.objects.get().kind == "feed"


@pytest.fixture
def feed_server():
    """A real HTTP server on loopback serving /rss.xml, /atom.xml and a 404."""
    bodies = {"/rss.xml": RSS, "/atom.xml": ATOM}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self.wfile.write(body or b"nope")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_polling_reads_new_entries_once(feed_server, companies, django_capture_on_commit_callbacks):
    source = feeds.feed_source_save(name="Harbor Wire", feed_url=f"{feed_server}/rss.xml")
    with django_capture_on_commit_callbacks(execute=False):
        first = poll_feed.apply(args=[source.pk]).get()
        second = poll_feed.apply(args=[source.pk]).get()
    assert (first["accepted"], first["rejected"]) == (2, 1)
    assert (second["accepted"], second["duplicates"]) == (0, 2)
    assert Article.objects.count() == 2
    source.refresh_from_db()
    assert source.feed_polled_at is not None and source.feed_error == ""


def test_a_failing_feed_keeps_its_reason(feed_server):
    source = feeds.feed_source_save(name="Gone", feed_url=f"{feed_server}/missing.xml")
    expected = {"error": f"{feed_server}/missing.xml answered HTTP 404 Not Found."}
    assert poll_feed.apply(args=[source.pk]).get() == expected
    source.refresh_from_db()
    assert "HTTP 404" in source.feed_error
    assert not IngestRun.objects.exists()


def test_the_beat_task_queues_one_poll_per_feed(feed_server, monkeypatch, django_capture_on_commit_callbacks):
    from celery import current_app

    feeds.feed_source_save(name="A", feed_url=f"{feed_server}/rss.xml")
    feeds.feed_source_save(name="B", feed_url=f"{feed_server}/atom.xml")
    Source.objects.create(name="CSV only")
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, **k: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):  # messages go after commit (task ledger)
        assert poll_feeds.apply().get() == 2
    assert [name for name, _ in sent] == ["finance.poll_feed", "finance.poll_feed"]


def test_the_beat_schedule_lists_the_feed_poll(settings):
    assert settings.CELERY_BEAT_SCHEDULE["finance-poll-feeds"]["task"] == "finance.poll_feeds"


def test_feeds_page_adds_polls_and_loads(client_with_roles, feed_server, companies,
                                        django_capture_on_commit_callbacks):
    client = client_with_roles(Role.ANALYST)
    response = client.post(reverse("finance:feeds"), {"action": "add", "name": "Harbor Wire",
                                                       "feed_url": f"{feed_server}/rss.xml"})
    assert response.status_code == 302
    source = Source.objects.get(name="Harbor Wire")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("finance:feed_poll", args=[source.pk]))
    run = IngestRun.objects.get()
    assert response["Location"] == reverse("finance:ingest_run", args=[run.pk])
    assert client.get(reverse("finance:ingest_run", args=[run.pk])).status_code == 200

    bad = client.post(reverse("finance:feeds"), {"action": "upload", "source": "X",
                                                  "file": SimpleUploadedFile("x.xml", b"<html></html>")})
    assert bad.status_code == 400 and "is not an RSS or Atom feed" in bad.content.decode()
    invalid = client.post(reverse("finance:feeds"), {"action": "add", "name": "Y", "feed_url": "ftp://x"})
    assert invalid.status_code == 400
    assert Source.objects.count() == 1
