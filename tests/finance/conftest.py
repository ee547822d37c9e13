import pytest

from finance.models import Company, Source
from mlcore import services as ml_services
from mlcore.models import Family, Task


@pytest.fixture
def companies(db):
    return {
        c.symbol: c
        for c in Company.objects.bulk_create([
            Company(symbol="NRVB", name="Norvale Bank", sector="Financials", aliases=["Norvale"]),
            Company(symbol="KSTR", name="Kestrel Air", sector="Industrials", aliases=["Kestrel Airlines"]),
            Company(symbol="HLVM", name="Halvorsen Mining", sector="Materials", aliases=[]),
        ])
    }


@pytest.fixture
def source(db):
    return Source.objects.create(name="Harbor Wire", kind=Source.Kind.CSV)


@pytest.fixture
def active_sentiment(db, tiny_encoder_dir, mlcore_home):
    """A tiny classifier trained for one epoch and activated as finance.sentiment."""
    from mlcore.training import train_encoder
    from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE

    rows = [{"text": phrase, "label": label}
            for label, phrases in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL))
            for phrase in phrases]
    train_encoder(base_path=str(tiny_encoder_dir), kind="classifier", train=rows, validation=rows,
                  labels=["positive", "neutral", "negative"], params={"epochs": 1}, work_dir=mlcore_home / "sent")
    version = ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec=str(tiny_encoder_dir),
        artifact_path="sent/best", label_map=["positive", "neutral", "negative"])
    return ml_services.model_version_activate(version=version)


@pytest.fixture
def seed_version(db):
    """An active finance.sentiment version with no weights: tests write its readings themselves."""
    return ml_services.model_version_activate(version=ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x", name="seed"))


@pytest.fixture
def make_article(source):
    """An article published `days_ago` days ago (10:00 local time), optionally read by a version at `score`."""
    from datetime import timedelta

    from django.utils import timezone

    from finance.models import Article, ArticleSentiment

    counter = iter(range(1, 100_000))

    def _make(title, *, body="", days_ago=0, score=None, version=None, on=source, leader=None):
        day = timezone.localdate() - timedelta(days=days_ago)
        article = Article.objects.create(
            source=on, title=title, body=body, published_at=timezone.make_aware(
                timezone.datetime(day.year, day.month, day.day, 10)),
            content_hash=f"a{next(counter):039d}", cluster_leader=leader)
        if score is not None:
            ArticleSentiment.objects.create(
                article=article, model_version=version, score=score,
                label="positive" if score > 0 else "negative" if score < 0 else "neutral",
                p_positive=max(score, 0), p_negative=max(-score, 0), p_neutral=1 - abs(score))
        return article

    return _make
