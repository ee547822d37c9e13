"""Aggregates on a small known set, with exact expected values."""

from datetime import UTC, datetime, timedelta

import pytest

from finance import selectors
from finance.models import Article, ArticleSentiment, ArticleTicker
from mlcore import services as ml_services
from mlcore.models import Family, Task

pytestmark = pytest.mark.django_db

D0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def known_set(source, companies):
    version = ml_services.model_version_activate(version=ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x"))
    old_version = ml_services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER,
                                                     base_spec="y")

    def article(title, when, score, label, mentions, leader=None):
        a = Article.objects.create(source=source, title=title, published_at=when,
                                   content_hash=title[:40].ljust(40, "x"), cluster_leader=leader)
        ArticleSentiment.objects.create(article=a, model_version=version, label=label, score=score,
                                        p_positive=max(score, 0), p_negative=max(-score, 0),
                                        p_neutral=1 - abs(score))
        # A reading by an inactive version must never count.
        ArticleSentiment.objects.create(article=a, model_version=old_version, label="neutral", score=0.9,
                                        p_positive=0.9, p_negative=0.0, p_neutral=0.1)
        for symbol, relevance in mentions:
            ArticleTicker.objects.create(article=a, company=companies[symbol], relevance=relevance, detected_by="name")
        return a

    a1 = article("Norvale up", D0, 0.6, "positive", [("NRVB", 1.0)])
    article("Norvale and Kestrel", D0 + timedelta(hours=1), -0.2, "negative", [("NRVB", 0.5), ("KSTR", 1.0)])
    article("Norvale up (copy)", D0 + timedelta(hours=2), 0.6, "positive", [("NRVB", 1.0)], leader=a1)
    article("Halvorsen flat", D0 - timedelta(days=8), 0.0, "neutral", [("HLVM", 1.0)])
    article("Halvorsen falls", D0, -0.5, "negative", [("HLVM", 1.0)])
    return version


@pytest.mark.parametrize(("score", "expected"), [
    (-0.9, "bearish"), (-0.35, "bearish"), (-0.34, "somewhat bearish"), (-0.15, "somewhat bearish"),
    (-0.14, "neutral"), (0.149, "neutral"), (0.15, "somewhat bullish"), (0.349, "somewhat bullish"),
    (0.35, "bullish"), (1.0, "bullish"),
])
def test_buckets_follow_the_alpha_vantage_thresholds(score, expected):
    assert selectors.bucket(score) == expected


def frame(known_set):
    return selectors.mentions_frame(start=D0.date() - timedelta(days=30), end=D0.date())


def test_a_story_counts_once_and_remembers_its_sources(known_set, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        f = frame(known_set)
    assert sorted(f["symbol"]) == ["HLVM", "HLVM", "KSTR", "NRVB", "NRVB"]
    assert f.loc[f["score"] == 0.6, "sources"].tolist() == [2]


def test_daily_ticker_scores_are_relevance_weighted(known_set):
    daily = selectors.daily_by_ticker(frame(known_set)).set_index(["symbol", "day"])
    norvale = daily.loc[("NRVB", D0.date())]
    assert norvale["articles"] == 2
    assert norvale["score"] == pytest.approx((0.6 * 1.0 - 0.2 * 0.5) / 1.5)
    assert norvale["share_positive"] == 0.5 and norvale["share_negative"] == 0.5
    assert norvale["bucket"] == "somewhat bullish"
    assert daily.loc[("KSTR", D0.date())]["bucket"] == "somewhat bearish"
    # The rolling mean looks back 7 days: Halvorsen's day-8 story is outside the window.
    assert daily.loc[("HLVM", D0.date())]["rolling_7d"] == pytest.approx(-0.5)
    assert daily.loc[("HLVM", D0.date() - timedelta(days=8))]["rolling_7d"] == pytest.approx(0.0)


def test_sector_and_market_days(known_set):
    sectors = selectors.daily_by_sector(frame(known_set)).set_index(["sector", "day"])
    assert sectors.loc[("Financials", D0.date())]["score"] == pytest.approx(1 / 3)
    market = selectors.daily_market(frame(known_set)).set_index("day")
    # Every (story, company) mention on D0, weighted by relevance.
    expected = (0.6 * 1 + -0.2 * 0.5 + -0.2 * 1 + -0.5 * 1) / (1 + 0.5 + 1 + 1)
    assert market.loc[D0.date()]["score"] == pytest.approx(expected)


def test_movers_compare_this_week_with_the_last(known_set):
    moved = selectors.movers(frame(known_set), end=D0.date(), days=7)
    assert moved["up"] == []
    assert [(m["symbol"], m["previous"], m["score"], m["change"]) for m in moved["down"]] == [
        ("HLVM", 0.0, -0.5, -0.5)]


def test_headlines_fold_copies_and_filter(known_set, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):  # the active version, the company's id, the headlines
        rows = selectors.headlines(start=D0.date() - timedelta(days=30), end=D0.date(), symbol="NRVB")
    assert [(r["title"], r["score"], r["sources"]) for r in rows] == [
        ("Norvale and Kestrel", -0.2, 1), ("Norvale up", 0.6, 2)]
    assert [r["title"] for r in selectors.headlines(start=D0.date() - timedelta(days=30), end=D0.date(),
                                                    query="halvorsen")] == ["Halvorsen falls", "Halvorsen flat"]


def test_without_a_sentiment_model_the_frames_are_empty(source, companies):
    empty = selectors.mentions_frame(start=D0.date(), end=D0.date())
    assert empty.empty
    assert selectors.daily_by_ticker(empty).empty
    assert selectors.movers(empty, end=D0.date()) == {"up": [], "down": []}
