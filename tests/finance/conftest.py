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
