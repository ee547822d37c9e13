"""The seed sentiment model and the demo universe that a fresh install starts with."""

import csv
import io
import json

import pytest

from finance import seed
from finance.models import Article, ArticleSentiment, Company, DailyPrice, Watchlist
from mlcore import api as ml

pytestmark = pytest.mark.django_db


def test_the_seed_set_is_balanced_and_free_of_duplicates():
    rows = list(csv.DictReader(io.StringIO(seed.SEED_CSV.read_text(encoding="utf-8"))))
    labels = [r["label"] for r in rows]
    assert len(rows) >= 600
    assert {label: labels.count(label) for label in set(labels)} == {
        "positive": len(rows) // 3, "neutral": len(rows) // 3, "negative": len(rows) // 3}
    assert len({r["text"].lower() for r in rows}) == len(rows)


def test_seed_model_is_trained_once_and_activated(mlcore_home, tiny_encoder_spec, monkeypatch):
    monkeypatch.setattr(seed, "SEED_PARAMS", {**seed.SEED_PARAMS, "epochs": 1, "max_length": 32})
    said = []
    version = seed.seed_model_ensure(say=said.append)
    assert version.state == "active" and version.task == "finance.sentiment"
    assert version.label_map == ["negative", "neutral", "positive"]
    assert "accuracy" in version.metrics
    assert seed.seed_model_ensure(say=said.append) == version  # already there: nothing trained
    assert said[-1] == f"finance.sentiment: version {version.pk} is active"


def test_the_demo_universe_loads_once_with_prices_and_a_watchlist(make_user, active_sentiment):
    from core.roles import Role

    make_user(Role.ANALYST, username="analyst")
    universe = json.loads(seed.DEMO_UNIVERSE.read_text())
    first = seed.demo_universe_load(say=lambda line: None)
    assert Company.objects.count() == len(universe["companies"])
    assert first["accepted"] + first["duplicates"] == len(universe["headlines"])
    assert first["rejected"] == 0
    assert first["clustered"] >= 25  # of the 30 syndicated copies written into the demo set
    assert Article.objects.count() == first["accepted"]
    assert DailyPrice.objects.filter(company__symbol=universe["companies"][0]["symbol"]).count() >= 60
    watchlist = Watchlist.objects.get(owner__username="analyst")
    assert watchlist.companies.count() == 8
    assert watchlist.report_schedules.get().periodic_task.enabled

    again = seed.demo_universe_load(say=lambda line: None)
    assert again["accepted"] == 0 and Article.objects.count() == first["accepted"]

    assert seed.demo_articles_score(say=lambda line: None) == first["accepted"]
    assert ArticleSentiment.objects.filter(model_version=ml.active_version(task=ml.Task.FINANCE_SENTIMENT)).count() \
        == first["accepted"]
