"""kill -9 a worker in the middle of scoring, a report and a feed poll: the ledger's sweep finishes each once."""

import threading
from datetime import time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import current_app
from django.utils import timezone

from core import services as core_services
from core.models import TaskRun
from core.roles import Role
from finance import feeds, reports, services, watchlists
from finance.models import Article, ArticleSentiment, IngestRun, Report, Source
from tests.faults.conftest import finished, kill_9, lock_waiters, row_locked, running_on
from tests.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def recover_lost_worker() -> dict:
    """What the beat's sweep does once the dead worker's heartbeat is old (here: at once)."""
    return core_services.task_runs_recover(stale_after=timedelta(0))


def test_scoring_killed_mid_write_is_requeued_and_scores_each_article_once(source, companies, active_sentiment,
                                                                          start_worker):
    result = services.articles_ingest(source=source, rows=[
        {"title": f"Norvale Bank update {i}", "body": "Profit rose.", "published_at": timezone.now().isoformat()}
        for i in range(3)
    ])
    run = TaskRun.objects.get(task="finance.score_articles")
    assert (run.state, run.args) == ("queued", [result.accepted])
    # The worker reads and scores, then blocks writing the reading of the locked article.
    with row_locked("SELECT id FROM finance_article WHERE id = %s FOR UPDATE", [result.accepted[0]]):
        with start_worker() as (proc, hostname):
            wait_for(lambda: running_on("finance.score_articles", hostname) and lock_waiters(), timeout=120,
                     what="scoring blocked on the locked article")
            kill_9(proc)
    assert TaskRun.objects.get(pk=run.pk).state == "running"  # nobody has told the database yet

    assert recover_lost_worker() == {"requeued": [run.pk], "failed": [], "resent": []}
    with start_worker() as (_, hostname):
        row = finished(run)
    assert (row.state, row.attempts, row.worker, row.error) == ("done", 2, hostname, "")
    counts = [ArticleSentiment.objects.filter(article_id=pk).count() for pk in result.accepted]
    assert counts == [1, 1, 1]


@pytest.fixture
def schedule(make_user, companies):
    analyst = make_user(Role.ANALYST)
    watchlist = watchlists.watchlist_save(owner=analyst, name="Banks", symbols=["NRVB"])
    return reports.report_schedule_save(owner=analyst, watchlist=watchlist, frequency="daily", time_of_day=time(7),
                                        tz="UTC", email=False)


def test_a_report_killed_mid_write_is_requeued_and_stored_once(schedule, start_worker):
    with row_locked("SELECT id FROM finance_watchlist WHERE id = %s FOR UPDATE", [schedule.watchlist_id]):
        with start_worker() as (proc, hostname):
            # As the beat entry sends it: no ledger row yet, the worker makes one on delivery.
            current_app.send_task("finance.generate_scheduled_report", args=[schedule.pk])
            wait_for(lambda: running_on("finance.generate_scheduled_report", hostname) and lock_waiters(),
                     timeout=120, what="the report blocked on the locked watchlist")
            kill_9(proc)
    run = TaskRun.objects.get(task="finance.generate_scheduled_report")
    assert (run.state, run.args, run.attempts) == ("running", [schedule.pk], 1)
    # Django's foreign keys are checked at COMMIT (deferred), so the worker was blocked in its COMMIT: PostgreSQL
    # finishes that commit once the lock goes, although the worker is dead. Either way the ledger still says
    # running, and the rerun replaces that period's report instead of adding a second one.
    wait_for(lambda: lock_waiters() == 0, timeout=30, what="the dead worker's blocked statement to end")
    assert Report.objects.count() <= 1

    assert recover_lost_worker()["requeued"] == [run.pk]
    with start_worker():
        row = finished(run)
    assert (row.state, row.attempts) == ("done", 2)
    report = Report.objects.get()
    assert (report.watchlist_id, report.period_end) == (schedule.watchlist_id, timezone.now().date() - timedelta(1))


FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Harbor Wire</title>
""" + b"".join(
    f"<item><title>Norvale Bank item {i}</title><link>https://harbor.example/{i}</link><description>"
    f"{'Loans grew. ' * 40}</description><pubDate>Mon, 02 Nov 2026 1{i}:30:00 GMT</pubDate></item>\n".encode()
    for i in range(6)
) + b"</channel></rss>"


@pytest.fixture
def stalling_feed():
    """A loopback server whose feed response stops half-way until `release` is set (then answers in full)."""
    half_sent, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(FEED)))
            self.end_headers()
            self.wfile.write(FEED[: len(FEED) // 2])
            self.wfile.flush()
            half_sent.set()
            release.wait(60)
            try:
                self.wfile.write(FEED[len(FEED) // 2:])
            except OSError:  # the reader was killed
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml", half_sent, release
    release.set()
    server.shutdown()


def test_a_feed_poll_killed_mid_download_is_requeued_and_loads_each_item_once(stalling_feed, companies,
                                                                               start_worker):
    url, half_sent, release = stalling_feed
    source = feeds.feed_source_save(name="Harbor Wire", feed_url=url)
    assert feeds.feed_polls_enqueue() == 1  # what the beat's finance.poll_feeds does
    run = TaskRun.objects.get(task="finance.poll_feed")
    with start_worker() as (proc, hostname):
        wait_for(lambda: half_sent.is_set() and running_on("finance.poll_feed", hostname), timeout=120,
                 what="the poll half-way through the download")
        kill_9(proc)
    release.set()
    assert not Article.objects.exists() and not IngestRun.objects.exists()

    assert recover_lost_worker()["requeued"] == [run.pk]
    with start_worker():
        row = finished(run)
    assert (row.state, row.attempts) == ("done", 2)
    assert sorted(Article.objects.values_list("title", flat=True)) == [f"Norvale Bank item {i}" for i in range(6)]
    ingest = IngestRun.objects.get()
    assert (ingest.rows, ingest.accepted, ingest.duplicates, ingest.rejected) == (6, 6, 0, 0)
    source.refresh_from_db()
    assert source.feed_error == "" and source.feed_polled_at is not None
    # Scoring of exactly these articles was recorded with them, once.
    [scoring] = TaskRun.objects.filter(task="finance.score_articles")
    assert sorted(scoring.args[0]) == sorted(Article.objects.values_list("pk", flat=True))


def test_a_poll_whose_worker_keeps_dying_fails_with_a_reason_once_attempts_run_out(stalling_feed, companies,
                                                                                    start_worker, settings):
    settings.PARLANCE_TASK_MAX_ATTEMPTS = 1
    url, half_sent, release = stalling_feed
    feeds.feed_source_save(name="Harbor Wire", feed_url=url)
    feeds.feed_polls_enqueue()
    run = TaskRun.objects.get(task="finance.poll_feed")
    with start_worker() as (proc, hostname):
        wait_for(lambda: half_sent.is_set() and running_on("finance.poll_feed", hostname), timeout=120,
                 what="the poll half-way through the download")
        kill_9(proc)
    release.set()

    assert recover_lost_worker() == {"requeued": [], "failed": [run.pk], "resent": []}
    row = TaskRun.objects.get(pk=run.pk)
    assert (row.state, row.attempts, row.max_attempts) == ("failed", 1, 1)
    assert f"({hostname}) was lost on each of 1 attempts; giving up after 1" in row.error
    assert row.finished_at is not None
    # The broker handing the old message out again (after its visibility timeout) runs nothing.
    from finance.tasks import poll_feed

    assert poll_feed.apply(args=[Source.objects.get().pk], kwargs={"run_id": run.pk},
                           task_id=row.celery_task_id).get() is None
    assert TaskRun.objects.get(pk=run.pk).attempts == 1
    assert not Article.objects.exists() and not IngestRun.objects.exists()
