import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.roles import Role
from finance import watchlists
from finance.models import Article, ArticleSentiment, ArticleTicker, Watchlist
from finance.services.rollup import rollup_rebuild
from mlcore import services as ml_services
from mlcore.models import Family, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(make_user):
    return make_user(Role.ANALYST)


def test_save_checks_tickers_and_names(analyst, companies):
    w = watchlists.watchlist_save(owner=analyst, name="Banks", symbols=["nrvb", "$KSTR", "NRVB"])
    assert sorted(w.companies.values_list("symbol", flat=True)) == ["KSTR", "NRVB"]
    with pytest.raises(watchlists.WatchlistError, match="Unknown tickers: NOPE, ZZZ"):
        watchlists.watchlist_save(owner=analyst, name="Other", symbols=["NOPE", "ZZZ", "NRVB"])
    with pytest.raises(watchlists.WatchlistError, match="already have a watchlist called 'Banks'"):
        watchlists.watchlist_save(owner=analyst, name="Banks", symbols=[])
    assert Watchlist.objects.count() == 1


def test_summary_compares_this_week_with_last(analyst, companies, source):
    version = ml_services.model_version_activate(version=ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x"))
    today = timezone.localdate()
    for i, (days_ago, score) in enumerate([(1, 0.6), (2, 0.2), (9, -0.4)]):
        day = today - timedelta(days=days_ago)
        a = Article.objects.create(source=source, title=f"n{i}", content_hash=f"{i:040d}",
                                   published_at=timezone.make_aware(timezone.datetime(day.year, day.month, day.day, 9)))
        ArticleSentiment.objects.create(article=a, model_version=version, score=score, label="neutral",
                                        p_positive=0, p_negative=0, p_neutral=1)
        ArticleTicker.objects.create(article=a, company=companies["NRVB"], relevance=1, detected_by="name")
    rollup_rebuild()  # written around the services
    w = watchlists.watchlist_save(owner=analyst, name="Mine", symbols=["NRVB", "KSTR"])
    summary = watchlists.watchlist_summary(watchlist=w, end=today)
    rows = {r["company"].symbol: r for r in summary["rows"]}
    assert rows["NRVB"]["score"] == pytest.approx(0.4) and rows["NRVB"]["previous"] == pytest.approx(-0.4)
    assert rows["NRVB"]["change"] == pytest.approx(0.8) and rows["NRVB"]["stories"] == 2
    assert rows["NRVB"]["bucket"] == "bullish"
    assert rows["KSTR"]["score"] is None and rows["KSTR"]["stories"] == 0
    assert summary["chart"]["data"][0]["name"] == "NRVB"


def test_pages_create_edit_export_delete(client, analyst, companies):
    client.force_login(analyst)
    response = client.post(reverse("finance:watchlists"), {"name": "Banks", "symbols": "NRVB, KSTR"})
    w = Watchlist.objects.get()
    assert response["Location"] == reverse("finance:watchlist", args=[w.pk])
    assert client.get(reverse("finance:watchlist", args=[w.pk])).status_code == 200
    bad = client.post(reverse("finance:watchlist", args=[w.pk]), {"name": "Banks", "symbols": "NOPE"})
    assert bad.status_code == 400 and "Unknown ticker: NOPE" in bad.content.decode()
    rows = list(csv.DictReader(io.StringIO(client.get(reverse("finance:watchlist", args=[w.pk]),
                                                      {"export": "csv"}).content.decode())))
    assert [r["symbol"] for r in rows] == ["KSTR", "NRVB"]
    assert client.post(reverse("finance:watchlist_delete", args=[w.pk])).status_code == 302
    assert not Watchlist.objects.exists()


def test_another_analysts_watchlist_is_404(client, analyst, make_user, companies):
    other = watchlists.watchlist_save(owner=make_user(Role.ANALYST), name="Theirs", symbols=["NRVB"])
    client.force_login(analyst)
    assert client.get(reverse("finance:watchlist", args=[other.pk])).status_code == 404
    assert client.post(reverse("finance:watchlist_delete", args=[other.pk])).status_code == 404
    assert Watchlist.objects.filter(pk=other.pk).exists()
    assert "Theirs" not in client.get(reverse("finance:watchlists")).content.decode()


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ANALYST])
def test_other_roles_are_refused(client_with_roles, role):
    assert client_with_roles(role).get(reverse("finance:watchlists")).status_code == 403
