import json
from datetime import date, time, timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from core.roles import Role
from finance import reports, watchlists
from finance.models import Article, ArticleSentiment, ArticleTicker, Report, ReportSchedule
from finance.services.rollup import rollup_rebuild
from mlcore import services as ml_services
from mlcore.models import Family, Task
from tests.workers import app_broker_env, celery_worker, purge_app_queues, require_redis, wait_for

YESTERDAY = timezone.localdate() - timedelta(days=1)


@pytest.fixture
def analyst(make_user):
    return make_user(Role.ANALYST, email="ana@example.test")


@pytest.fixture
def news(db, source, companies):
    version = ml_services.model_version_activate(version=ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x"))
    for i, (days_before, symbol, score) in enumerate([(0, "NRVB", 0.7), (0, "NRVB", -0.3), (0, "KSTR", -0.6),
                                                      (1, "NRVB", -0.5), (3, "HLVM", 0.2)]):
        day = YESTERDAY - timedelta(days=days_before)
        a = Article.objects.create(source=source, title=f"{symbol} story {i}", content_hash=f"{i:040d}",
                                   url=f"https://x.example/{i}",
                                   published_at=timezone.make_aware(timezone.datetime(day.year, day.month, day.day, 9)))
        ArticleSentiment.objects.create(article=a, model_version=version, score=score, label="neutral",
                                        p_positive=0, p_negative=0, p_neutral=1)
        ArticleTicker.objects.create(article=a, company=companies[symbol], relevance=1, detected_by="name")
    rollup_rebuild()  # written around the services
    return version


@pytest.mark.django_db
def test_periods():
    today = date(2026, 11, 30)
    assert reports.report_period(frequency="daily", today=today) == (date(2026, 11, 29), date(2026, 11, 29))
    assert reports.report_period(frequency="weekly", today=today) == (date(2026, 11, 23), date(2026, 11, 29))


@pytest.mark.django_db
def test_a_daily_report_compares_with_the_day_before_and_lists_top_headlines(analyst, news):
    w = watchlists.watchlist_save(owner=analyst, name="Mine", symbols=["NRVB", "KSTR"])
    s = reports.report_build(watchlist=w, start=YESTERDAY, end=YESTERDAY)
    rows = {r["symbol"]: r for r in s["companies"]}
    assert rows["NRVB"]["stories"] == 2 and rows["NRVB"]["score"] == pytest.approx(0.2)
    assert rows["NRVB"]["previous"] == pytest.approx(-0.5) and rows["NRVB"]["change"] == pytest.approx(0.7)
    assert rows["KSTR"]["score"] == pytest.approx(-0.6) and rows["KSTR"]["bucket"] == "bearish"
    assert [h["title"] for h in s["top_positive"]] == ["NRVB story 0"]
    assert [h["title"] for h in s["top_negative"]] == ["KSTR story 2", "NRVB story 1"]
    assert s["stories"] == 3


@pytest.mark.django_db
def test_the_same_period_twice_replaces_and_mails_the_owner(analyst, news, django_capture_on_commit_callbacks):
    w = watchlists.watchlist_save(owner=analyst, name="Mine", symbols=["NRVB"])
    with django_capture_on_commit_callbacks(execute=True):
        first = reports.report_generate(watchlist=w, start=YESTERDAY, end=YESTERDAY)
    with django_capture_on_commit_callbacks(execute=True):
        second = reports.report_generate(watchlist=w, start=YESTERDAY, end=YESTERDAY)
    assert first.pk == second.pk and Report.objects.count() == 1
    assert len(mail.outbox) == 2
    message = mail.outbox[-1]
    assert message.to == ["ana@example.test"] and "Mine" in message.subject
    assert message.attachments[0][0].endswith(".csv") and "NRVB" in message.attachments[0][1]
    assert "<script" not in message.alternatives[0][0]
    second.refresh_from_db()
    assert second.emailed_to == "ana@example.test"


@pytest.mark.django_db
def test_a_schedule_is_a_beat_entry_that_the_admin_can_edit(analyst, companies):
    w = watchlists.watchlist_save(owner=analyst, name="Mine", symbols=["NRVB"])
    schedule = reports.report_schedule_save(owner=analyst, watchlist=w, frequency="weekly", time_of_day=time(7, 30),
                                            tz="Europe/London")
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "finance.generate_scheduled_report" and json.loads(task.args) == [schedule.pk]
    assert (task.crontab.hour, task.crontab.minute, task.crontab.day_of_week) == ("7", "30", "1")
    assert str(task.crontab.timezone) == "Europe/London"
    again = reports.report_schedule_save(owner=analyst, watchlist=w, frequency="weekly", time_of_day=time(8, 0),
                                         tz="UTC")
    assert again.pk == schedule.pk and PeriodicTask.objects.count() == 1
    with pytest.raises(reports.ReportError, match="not a timezone"):
        reports.report_schedule_save(owner=analyst, watchlist=w, frequency="daily", time_of_day=time(8), tz="Mars/X")
    reports.report_schedule_delete(schedule=again)
    assert not PeriodicTask.objects.exists() and not ReportSchedule.objects.exists()


@pytest.mark.django_db
def test_pages_schedule_make_download_and_keep_reports_private(client, analyst, make_user, news):
    w = watchlists.watchlist_save(owner=analyst, name="Mine", symbols=["NRVB"])
    client.force_login(analyst)
    assert client.post(reverse("finance:reports"), {"action": "schedule", "watchlist": w.pk, "frequency": "daily",
                                                    "time_of_day": "07:00", "timezone": "UTC",
                                                    "email": "on"}).status_code == 302
    assert ReportSchedule.objects.count() == 1
    response = client.post(reverse("finance:reports"), {"action": "now", "watchlist": w.pk, "frequency": "daily"})
    report = Report.objects.get()
    assert response["Location"] == reverse("finance:report", args=[report.pk])
    page = client.get(response["Location"]).content.decode()
    assert "NRVB story 0" in page
    html = client.get(response["Location"], {"format": "html"})
    assert html["Content-Disposition"].startswith("attachment") and b"<script" not in html.content
    assert b"NRVB" in client.get(response["Location"], {"format": "csv"}).content

    other = make_user(Role.ANALYST)
    client.force_login(other)
    assert client.get(reverse("finance:report", args=[report.pk])).status_code == 404
    bad = client.post(reverse("finance:reports"), {"action": "now", "watchlist": w.pk, "frequency": "daily"})
    assert bad.status_code == 400  # someone else's watchlist is not a choice
    assert Report.objects.count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_scheduled_report_is_made_by_a_real_worker(analyst, news, tmp_path):
    from celery import current_app

    from core.celery import app

    if app.conf.broker_url.startswith("redis"):
        require_redis(app.conf.broker_url)
    purge_app_queues()
    w = watchlists.watchlist_save(owner=analyst, name="Mine", symbols=["NRVB", "KSTR"])
    schedule = reports.report_schedule_save(owner=analyst, watchlist=w, frequency="daily", time_of_day=time(7),
                                            tz="UTC", email=False)
    env = app_broker_env()
    with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="default", extra_env=env, log_dir=tmp_path):
        # Run twice, as a redelivered task would: still one report.
        ids = [current_app.send_task("finance.generate_scheduled_report", args=[schedule.pk]).id for _ in range(2)]
        wait_for(lambda: TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count() == 2, timeout=120,
                 what="both runs")
    assert Report.objects.count() == 1
    report = Report.objects.get()
    assert {int(r) for r in TaskResult.objects.filter(task_id__in=ids).values_list("result", flat=True)} == {report.pk}
    assert report.period_end == timezone.now().date() - timedelta(days=1)
    assert {r["symbol"] for r in report.summary["companies"]} == {"NRVB", "KSTR"}
