"""Articles ingested on the web side are scored by a real ml worker process."""

import pytest
from django.utils import timezone

from finance import services
from finance.models import ArticleSentiment
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_new_articles_are_scored_by_the_ml_worker(source, companies, active_sentiment, mlcore_home, tmp_path):
    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home)}
    with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="ml", extra_env=env, log_dir=tmp_path):
        result = services.articles_ingest(source=source, rows=[
            {"title": f"Norvale Bank update {i}", "body": "Profit rose.", "published_at": timezone.now().isoformat()}
            for i in range(5)
        ])
        wait_for(lambda: ArticleSentiment.objects.filter(article_id__in=result.accepted).count() == 5, timeout=120,
                 what="five sentiment readings")
    assert set(ArticleSentiment.objects.values_list("model_version_id", flat=True)) == {active_sentiment.pk}
