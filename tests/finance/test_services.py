from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from finance import services
from finance.models import Article, ArticleSentiment, ArticleTicker
from mlcore import api as ml

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def row(title, body="", url="", published_at=None):
    return {"title": title, "body": body, "url": url, "published_at": published_at or NOW.isoformat()}


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-02T14:30:00Z", datetime(2026, 3, 2, 14, 30, tzinfo=UTC)),
    ("2026-03-02 14:30:00+01:00", datetime(2026, 3, 2, 13, 30, tzinfo=UTC)),
    ("Mon, 02 Mar 2026 14:30:00 GMT", datetime(2026, 3, 2, 14, 30, tzinfo=UTC)),
    ("2026-03-02", datetime(2026, 3, 2, tzinfo=UTC)),
    ("2026-03-02T14:30:00", datetime(2026, 3, 2, 14, 30, tzinfo=UTC)),
])
def test_published_times_in_the_usual_formats(value, expected):
    assert services.parse_published(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("", "missing"), ("next tuesday", "is not a date"), ("2999-01-01", "in the future"),
])
def test_bad_published_times_say_why(value, message):
    with pytest.raises(services.RowError, match=message):
        services.parse_published(value)


def test_ingest_accepts_rejects_and_deduplicates_with_reasons(source, companies, django_capture_on_commit_callbacks):
    rows = [
        row("Norvale Bank profit jumps 18%", "Norvale said loans grew.", "https://harbor.example/a"),
        row("   ", "no title"),
        row("Kestrel Air cuts guidance", url="ftp://harbor.example/b"),
        row("Halvorsen Mining halts mine", published_at="yesterday-ish"),
        row("Norvale Bank profit jumps 18%", "Norvale said loans grew."),
        row("Kestrel Air cuts guidance", "Fuel costs bite."),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = services.articles_ingest(source=source, rows=rows)
    assert result.summary == {"accepted": 2, "duplicates": 1, "rejected": 3, "clustered": 0}
    assert [(r["row"], r["reason"]) for r in result.rejected] == [
        (2, "the title is empty"),
        (3, "the url 'ftp://harbor.example/b' is not an http(s) address"),
        (4, "the published time 'yesterday-ish' is not a date (use e.g. 2026-11-29T14:30:00Z)"),
    ]
    assert result.duplicates == [
        {"row": 5, "title": "Norvale Bank profit jumps 18%", "reason": "same article as row 1"}]
    assert Article.objects.count() == 2
    assert len(callbacks) == 1  # scoring is queued after the commit

    again = services.articles_ingest(source=source, rows=rows)
    assert again.summary == {"accepted": 0, "duplicates": 3, "rejected": 3, "clustered": 0}
    assert {d["reason"] for d in again.duplicates} == {"already loaded earlier", "same article as row 1"}
    assert Article.objects.count() == 2


def test_an_oversized_body_is_refused(source):
    result = services.articles_ingest(source=source, rows=[row("Big", "x" * (services.BODY_MAX + 1))])
    assert "the limit is 100,000" in result.rejected[0]["reason"]
    assert not Article.objects.exists()


def test_tickers_come_from_cashtags_symbols_and_names_weighted_by_where(source, companies):
    services.articles_ingest(source=source, rows=[
        row("$NRVB and KSTR rally", "Halvorsen Mining was flat. NRVBX is another thing."),
        row("Airline stocks mixed", "Kestrel Airlines said bookings held up; norvale was not mentioned in caps."),
    ])
    first, second = Article.objects.order_by("id")
    assert {(t.company.symbol, t.relevance, t.detected_by) for t in first.tickers.select_related("company")} == {
        ("NRVB", 1.0, "cashtag"), ("KSTR", 1.0, "symbol"), ("HLVM", 0.5, "name")}
    assert {(t.company.symbol, t.relevance, t.detected_by) for t in second.tickers.select_related("company")} == {
        ("KSTR", 0.5, "name"), ("NRVB", 0.5, "name")}


def test_cashtags_take_symbols_with_digits_dots_and_hyphens_but_not_a_final_dot(source, companies):
    from finance.models import Company

    Company.objects.create(symbol="BRK.B", name="Berkline Holdings B", sector="Financials", aliases=[])
    Company.objects.create(symbol="X1", name="Xenon One", sector="Energy", aliases=[])
    services.articles_ingest(source=source, rows=[row("$BRK.B buys a stake in $X1.", "Nothing else. $3bn deal.")])
    article = Article.objects.get()
    assert sorted((t.company.symbol, t.detected_by) for t in article.tickers.select_related("company")) == [
        ("BRK.B", "cashtag"), ("X1", "cashtag")]


def test_syndicated_copies_point_at_the_first_story(source, companies):
    story = ("Kestrel Air cuts its full year outlook as jet fuel costs rise and bookings to Europe slow down "
             "sharply in the third quarter")
    services.articles_ingest(source=source, rows=[row(story, published_at=(NOW - timedelta(hours=5)).isoformat())])
    result = services.articles_ingest(source=source, rows=[
        row(story + " - report"), row("Norvale Bank opens a branch in Leeds")])
    assert result.clustered == 1
    first, copy, other = Article.objects.order_by("id")
    assert first.cluster_leader_id is None and first.is_leader
    assert copy.cluster_leader_id == first.pk and not copy.is_leader
    assert other.cluster_leader_id is None


def test_scoring_writes_one_reading_per_article_and_version(source, companies, active_sentiment):
    result = services.articles_ingest(source=source, rows=[
        row("Norvale Bank profit rose", "Shares jumped. Record sales were reported."), row("Kestrel Air loss widened")])
    assert services.articles_score(article_ids=result.accepted) == 2
    assert services.articles_score(article_ids=result.accepted) == 0  # safe to run twice
    readings = ArticleSentiment.objects.order_by("article_id")
    assert readings.count() == 2
    for reading in readings:
        assert reading.model_version == active_sentiment
        assert reading.p_positive + reading.p_neutral + reading.p_negative == pytest.approx(1.0, abs=1e-5)
        assert reading.score == pytest.approx(reading.p_positive - reading.p_negative)
        assert reading.label == max(("positive", "neutral", "negative"), key=lambda lab: getattr(reading, f"p_{lab}"))
    assert [s["text"] for s in readings[0].sentences] == [
        "Norvale Bank profit rose", "Shares jumped.", "Record sales were reported."]


def test_scoring_without_a_sentiment_model_says_what_to_do(source):
    result = services.articles_ingest(source=source, rows=[row("Norvale Bank profit rose")])
    with pytest.raises(ml.NoActiveVersion, match="An operator trains or activates one"):
        services.articles_score(article_ids=result.accepted)


def test_activating_a_sentiment_model_requests_a_rescore(source, active_sentiment, monkeypatch,
                                                          django_capture_on_commit_callbacks):
    from celery import current_app

    from mlcore import services as ml_services
    from mlcore.models import Family, Task

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, *a, **k: sent.append(name))
    newer = ml_services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER,
                                               base_spec=active_sentiment.base_spec,
                                               artifact_path=active_sentiment.artifact_path)
    with django_capture_on_commit_callbacks(execute=True):
        ml_services.model_version_activate(version=newer)
    assert sent == ["finance.rescore_all"]


def test_rescore_all_queues_what_the_active_version_has_not_read(source, active_sentiment, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    from celery import current_app

    result = services.articles_ingest(source=source, rows=[row(f"Norvale Bank item {i}") for i in range(5)])
    services.articles_score(article_ids=result.accepted[:2])
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=None, **k: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):  # messages go after commit (task ledger)
        assert services.articles_rescore_all(batch=2) == 3
    assert sent == [("finance.score_articles", [result.accepted[2:4]]),
                    ("finance.score_articles", [result.accepted[4:]])]


def test_a_manual_ticker_cannot_be_added_twice(source, companies):
    from django.db import IntegrityError, transaction

    result = services.articles_ingest(source=source, rows=[row("$NRVB up")])
    article = Article.objects.get(pk=result.accepted[0])
    with pytest.raises(IntegrityError), transaction.atomic():
        ArticleTicker.objects.create(article=article, company=companies["NRVB"], relevance=1, detected_by="manual")


def test_a_copy_loaded_before_its_original_still_folds_into_the_earliest(source, companies):
    story = "Kestrel Air grounds 14 jets for engine checks after a fault on one aircraft"
    later = (NOW - timedelta(hours=2)).isoformat()
    earlier = (NOW - timedelta(hours=6)).isoformat()
    first = services.articles_ingest(source=source, rows=[row(story + " - report", published_at=later)])
    second = services.articles_ingest(source=source, rows=[row(story, published_at=earlier)])
    assert second.clustered == 1
    copy, original = Article.objects.get(pk=first.accepted[0]), Article.objects.get(pk=second.accepted[0])
    assert original.cluster_leader_id is None
    assert copy.cluster_leader_id == original.pk
