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
