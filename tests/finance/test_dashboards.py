"""Dashboard and ticker pages: roles, numbers on the page, CSV exports, bad filters, query counts."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.roles import Role
from finance.models import Article, ArticleSentiment, ArticleTicker, DailyPrice
from mlcore import services as ml_services
from mlcore.models import Family, Task

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


@pytest.fixture
def scored_news(source, companies):
    version = ml_services.model_version_activate(version=ml_services.model_version_register(
        task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x", name="seed"))
    for i in range(12):
        day = TODAY - timedelta(days=i)
        when = timezone.make_aware(timezone.datetime(day.year, day.month, day.day, 10))
        a = Article.objects.create(source=source, title=f"Norvale story {i}", published_at=when,
                                   content_hash=f"{i:040d}", url=f"https://harbor.example/{i}")
        score = 0.5 if i % 2 else -0.5
        ArticleSentiment.objects.create(article=a, model_version=version, score=score,
                                        label="positive" if score > 0 else "negative",
                                        p_positive=max(score, 0), p_negative=max(-score, 0), p_neutral=0.5)
        ArticleTicker.objects.create(article=a, company=companies["NRVB"], relevance=1.0, detected_by="name")
        ArticleTicker.objects.create(article=a, company=companies["KSTR"], relevance=0.5, detected_by="name")
    for i in range(20):
        DailyPrice.objects.create(company=companies["NRVB"], date=TODAY - timedelta(days=i), close=40 + i % 3)
    return version


@pytest.mark.parametrize("role", list(Role))
def test_dashboards_open_for_analysts_only(client_with_roles, role, companies):
    client = client_with_roles(role)
    for url in (reverse("finance:dashboard"), reverse("finance:ticker", args=["NRVB"])):
        assert client.get(url).status_code == (200 if role == Role.ANALYST else 403)


def test_anonymous_users_go_to_login(client, companies):
    assert client.get(reverse("finance:ticker", args=["NRVB"])).status_code == 302


def test_an_unknown_ticker_is_404(client_with_roles):
    assert client_with_roles(Role.ANALYST).get(reverse("finance:ticker", args=["NOPE"])).status_code == 404


def test_the_dashboard_explains_what_to_do_without_news(client_with_roles):
    html = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard")).content.decode()
    assert "No scored news in this window" in html and "No sentiment model is active yet" in html


def test_the_dashboard_shows_charts_headlines_and_progress(client_with_roles, scored_news,
                                                          django_assert_max_num_queries):
    client = client_with_roles(Role.ANALYST)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("finance:dashboard"))
    html = response.content.decode()
    assert 'id="market-chart-data"' in html and 'id="sector-chart-data"' in html
    assert "Norvale story 0" in html
    assert "read 12 of 12 articles" in html
    assert "cdn" not in html.lower()


def test_the_ticker_page_numbers(client_with_roles, scored_news, django_assert_max_num_queries):
    client = client_with_roles(Role.ANALYST)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("finance:ticker", args=["nrvb"]))
    assert response.status_code == 200
    assert response.context["summary"]["stories"] == 12
    assert response.context["summary"]["score"] == pytest.approx(0.0)  # six at +0.5, six at -0.5
    assert len(response.context["rows"]) == 12
    assert [row["lag"] for row in response.context["lead_lag"]] == [-2, -1, 0, 1, 2]


def test_csv_exports_hold_the_table_rows(client_with_roles, scored_news):
    client = client_with_roles(Role.ANALYST)
    response = client.get(reverse("finance:ticker", args=["NRVB"]), {"export": "daily"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 12
    assert {float(r["score"]) for r in rows} == {0.5, -0.5}
    heads = client.get(reverse("finance:dashboard"), {"export": "headlines"}).content.decode()
    assert len(list(csv.DictReader(io.StringIO(heads)))) == 12
    market = list(csv.DictReader(io.StringIO(
        client.get(reverse("finance:dashboard"), {"export": "market"}).content.decode())))
    assert len(market) == 12 and market[0]["bucket"] in {"bearish", "bullish"}


def test_csv_exports_never_hand_a_spreadsheet_a_formula(client_with_roles, scored_news):
    Article.objects.filter(title="Norvale story 0").update(title='=HYPERLINK("http://evil.example","Norvale")')
    heads = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard"), {"export": "headlines"})
    titles = [r["title"] for r in csv.DictReader(io.StringIO(heads.content.decode()))]
    assert "'=HYPERLINK(\"http://evil.example\",\"Norvale\")" in titles
    assert not any(t.startswith("=") for t in titles)


@pytest.mark.parametrize("params", [
    {"start": "2026-13-40"}, {"start": "2026-05-02", "end": "2026-05-01"}, {"start": "2000-01-01"},
    {"sources": ["999999"]}, {"q": "x" * 500},
])
def test_bad_filters_fall_back_with_a_message_not_a_500(client_with_roles, scored_news, params):
    response = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard"), params)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert response.context["window"]["end"] == TODAY


def test_search_filters_headlines(client_with_roles, scored_news):
    response = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard"), {"q": "story 11"})
    assert [h["title"] for h in response.context["headlines"]] == ["Norvale story 11"]
