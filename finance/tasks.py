"""Celery tasks of finance: thin wrappers over services (scoring is routed to the ml queue)."""

from celery import shared_task

from finance import services


@shared_task(name="finance.score_articles", acks_late=True, autoretry_for=(ConnectionError,), max_retries=3,
             retry_backoff=True)
def score_articles(article_ids: list[int]) -> int:
    return services.articles_score(article_ids=article_ids)


@shared_task(name="finance.rescore_all", acks_late=True, max_retries=0)
def rescore_all() -> int:
    return services.articles_rescore_all()


@shared_task(name="finance.poll_feeds", acks_late=True, max_retries=0)
def poll_feeds() -> int:
    """Beat: queue one poll per source that has a feed address."""
    from celery import current_app

    from finance.feeds import feed_sources

    ids = list(feed_sources().values_list("pk", flat=True))
    for source_id in ids:
        current_app.send_task("finance.poll_feed", args=[source_id])
    return len(ids)


@shared_task(name="finance.poll_feed", acks_late=True, max_retries=0)
def poll_feed(source_id: int) -> dict:
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


@shared_task(name="finance.generate_scheduled_report", acks_late=True, max_retries=0)
def generate_scheduled_report(schedule_id: int) -> int | None:
    from finance.reports import report_scheduled_run

    report = report_scheduled_run(schedule_id=schedule_id)
    return report.pk if report else None


@shared_task(name="finance.redetect_tickers", acks_late=True, max_retries=0)
def redetect_tickers(run_id: int) -> dict | None:
    """Look for one company again in recent articles (a TickerRedetectRun); a redelivered run does nothing."""
    from finance.services.companies import redetect_run

    run = redetect_run(run_id=run_id)
    return None if run is None else {"scanned": run.scanned, "added": run.added}
