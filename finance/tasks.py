"""Celery tasks of finance: thin wrappers over services (scoring is routed to the ml queue).

Scoring, feed polls and reports run under the task ledger (core.tasks.run_recorded): a worker killed mid-task
is noticed by the beat's sweep, and the run is requeued or failed with a reason.
"""

from celery import shared_task

from core.services import task_run_on_give_up
from core.tasks import run_recorded
from finance import services


@shared_task(name="finance.score_articles", bind=True, acks_late=True, autoretry_for=(ConnectionError,),
             max_retries=3, retry_backoff=True)
def score_articles(self, article_ids: list[int], run_id: int | None = None) -> int | None:
    return run_recorded(self, run_id=run_id, work=lambda: services.articles_score(article_ids=article_ids))


@shared_task(name="finance.rescore_all", bind=True, acks_late=True, max_retries=0)
def rescore_all(self, run_id: int | None = None) -> int | None:
    return run_recorded(self, run_id=run_id, work=services.articles_rescore_all)


@shared_task(name="finance.poll_feeds", acks_late=True, max_retries=0)
def poll_feeds() -> int:
    """Beat: queue one poll per source that has a feed address."""
    from finance.feeds import feed_polls_enqueue

    return feed_polls_enqueue()


@shared_task(name="finance.poll_feed", bind=True, acks_late=True, max_retries=0)
def poll_feed(self, source_id: int, run_id: int | None = None) -> dict | None:
    return run_recorded(self, run_id=run_id, work=lambda: _poll_feed(source_id))


def _poll_feed(source_id: int) -> dict:
    from finance.feeds import feed_poll, feed_poll_failed
    from finance.models import Source
    from mlcore.data import DataError

    source = Source.objects.filter(pk=source_id).exclude(feed_url="").first()
    if source is None:
        return {"skipped": "no such feed source"}
    try:
        run = feed_poll(source=source)
    except DataError as exc:
        feed_poll_failed(source=source, error=str(exc))
        return {"error": str(exc)}
    return {"run": run.pk, "accepted": run.accepted, "duplicates": run.duplicates, "rejected": run.rejected}


@shared_task(name="finance.generate_scheduled_report", bind=True, acks_late=True, max_retries=0)
def generate_scheduled_report(self, schedule_id: int, run_id: int | None = None) -> int | None:
    from finance.reports import report_scheduled_run

    def work():
        report = report_scheduled_run(schedule_id=schedule_id)
        return report.pk if report else None

    return run_recorded(self, run_id=run_id, work=work)


@shared_task(name="finance.redetect_tickers", bind=True, acks_late=True, max_retries=0)
def redetect_tickers(self, redetect_id: int, run_id: int | None = None) -> dict | None:
    """Look for one company again in recent articles (a TickerRedetectRun), under the task ledger."""
    from finance.services.companies import redetect_run

    def work():
        run = redetect_run(run_id=redetect_id, rerun=True)
        return None if run is None else {"scanned": run.scanned, "added": run.added}

    return run_recorded(self, run_id=run_id, work=work)


def _redetect_gave_up(run) -> None:
    from finance.services.companies import redetect_gave_up

    redetect_gave_up(run_id=run.args[0], attempts=run.attempts)


task_run_on_give_up("finance.redetect_tickers", _redetect_gave_up)
