"""Sector page: score by day and week, its tickers, heatmap, headlines, filters, exports, links and access."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.roles import Role
from finance.models import ArticleTicker, Company, Source
from finance.services.rollup import rollup_rebuild

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


@pytest.fixture
def sector_news(companies, make_article, seed_version):
    """Financials: NRVB daily for ten days (+0.5 on even days ago, −0.5 on odd), ALDR twice, BRCH never.
    Industrials' KSTR has one strongly negative story that must not leak in."""
    aldr = Company.objects.create(symbol="ALDR", name="Alder Trust", sector="Financials")
    Company.objects.create(symbol="BRCH", name="Birch Savings", sector="Financials")
    for days_ago in range(10):
        article = make_article(f"Norvale story {days_ago}", days_ago=days_ago,
                               score=0.5 if days_ago % 2 == 0 else -0.5, version=seed_version)
        ArticleTicker.objects.create(article=article, company=companies["NRVB"], relevance=1, detected_by="name")
    for days_ago, score, relevance in ((0, 0.8, 0.5), (8, -0.2, 1.0)):
        article = make_article(f"Alder story {days_ago}", days_ago=days_ago, score=score, version=seed_version,
                               on=Source.objects.get_or_create(name="Second Wire")[0])
        ArticleTicker.objects.create(article=article, company=aldr, relevance=relevance, detected_by="name")
    kestrel = make_article("Kestrel Air collapses", days_ago=0, score=-0.9, version=seed_version)
    ArticleTicker.objects.create(article=kestrel, company=companies["KSTR"], relevance=1, detected_by="name")
    rollup_rebuild()  # written around the services
    return seed_version


def url(sector="Financials"):
    return reverse("finance:sector", args=[sector])


def test_the_sector_page_numbers(client_with_roles, sector_news, django_assert_max_num_queries):
    client = client_with_roles(Role.ANALYST)
    with django_assert_max_num_queries(12):
        response = client.get(url())
    assert response.status_code == 200
    ctx = response.context
    assert ctx["sector"] == "Financials" and ctx["period"] == "day"
    tickers = {t["company"].symbol: t for t in ctx["tickers"]}
    assert list(tickers) == ["ALDR", "BRCH", "NRVB"]
    # NRVB: four +0.5 and three −0.5 in the last 7 days; two −0.5 and one +0.5 in the 7 before.
    assert tickers["NRVB"]["score"] == pytest.approx(0.5 / 7)
    assert tickers["NRVB"]["previous"] == pytest.approx(-0.5 / 3)
    assert tickers["NRVB"]["change"] == pytest.approx(0.5 / 7 + 0.5 / 3)
    assert (tickers["NRVB"]["stories"], tickers["NRVB"]["bucket"]) == (10, "neutral")
    assert (tickers["ALDR"]["score"], tickers["ALDR"]["change"], tickers["ALDR"]["bucket"]) == (
        pytest.approx(0.8), pytest.approx(1.0), "bullish")
    assert (tickers["BRCH"]["score"], tickers["BRCH"]["stories"]) == (None, 0)
    assert [h["title"] for h in ctx["headlines"]].count("Kestrel Air collapses") == 0
    assert len(ctx["headlines"]) == 12
    assert ctx["heatmap"]["data"][0]["y"] == ["ALDR", "NRVB"]
    series = ctx["chart"]["data"]
    assert [trace["name"] for trace in series] == ["daily score", "7-day mean", "stories"]
    days = dict(zip(series[0]["x"], series[0]["y"], strict=True))
    assert len(days) == 10
    assert days[str(TODAY)] == pytest.approx((0.5 * 1 + 0.8 * 0.5) / 1.5, abs=1e-4)  # relevance-weighted


def test_the_weekly_view_sums_to_the_same_stories(client_with_roles, sector_news):
    client = client_with_roles(Role.ANALYST)
    response = client.get(url(), {"period": "week"})
    assert response.context["period"] == "week"
    series = response.context["chart"]["data"]
    assert [trace["name"] for trace in series] == ["weekly score", "stories"]
    assert sum(series[1]["y"]) == 12
    assert all(timezone.datetime.fromisoformat(day).weekday() == 0 for day in series[0]["x"])
    rows = list(csv.DictReader(io.StringIO(client.get(url(), {"period": "week", "export": "series"})
                                           .content.decode())))
    assert sum(int(r["stories"]) for r in rows) == 12 and "week" in rows[0]


def test_csv_exports_hold_the_tables(client_with_roles, sector_news):
    client = client_with_roles(Role.ANALYST)

    def export(kind, **params):
        response = client.get(url(), {"export": kind, **params})
        assert response["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    series = export("series")
    assert len(series) == 10 and {r["day"] for r in series} == {str(TODAY - timedelta(days=n)) for n in range(10)}
    tickers = export("tickers")
    assert [(r["symbol"], r["stories"], r["bucket"]) for r in tickers] == [
        ("ALDR", "2", "bullish"), ("BRCH", "0", ""), ("NRVB", "10", "neutral")]
    assert float(tickers[2]["change"]) == round(0.5 / 7 + 0.5 / 3, 4)
    assert len(export("heatmap")) == 12
    assert len(export("headlines")) == 12


def test_date_and_source_filters(client_with_roles, sector_news):
    client = client_with_roles(Role.ANALYST)
    second = Source.objects.get(name="Second Wire")
    response = client.get(url(), {"sources": [second.pk]})
    assert {h["title"] for h in response.context["headlines"]} == {"Alder story 0", "Alder story 8"}
    assert {t["company"].symbol: t["stories"] for t in response.context["tickers"]} == {"ALDR": 2, "BRCH": 0,
                                                                                       "NRVB": 0}
    response = client.get(url(), {"start": str(TODAY - timedelta(days=2)), "end": str(TODAY)})
    assert len(response.context["headlines"]) == 4  # Norvale 0, 1, 2 and Alder 0
    bad = client.get(url(), {"start": "2026-13-40"})
    assert bad.status_code == 200 and bad.context["form"].errors


def test_sector_names_are_matched_without_case_and_unknown_is_404(client_with_roles, sector_news):
    client = client_with_roles(Role.ANALYST)
    assert client.get(url("financials")).context["sector"] == "Financials"
    assert client.get(url("Nowhere")).status_code == 404


def test_a_sector_without_news_explains_what_to_do(client_with_roles, companies):
    html = client_with_roles(Role.ANALYST).get(url("Materials")).content.decode()
    assert "No scored news for this sector in this window" in html and "HLVM" in html


def test_the_dashboard_and_ticker_pages_link_to_sectors(client_with_roles, sector_news,
                                                        django_assert_max_num_queries):
    client = client_with_roles(Role.ANALYST)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("finance:dashboard"))
    html = response.content.decode()
    assert f'href="{url()}"' in html and f'href="{url("Industrials")}"' in html
    assert 'data-row-link="/finance/sectors/__row__/"' in html
    assert {s["sector"]: s["stories"] for s in response.context["sectors"]} == {"Financials": 12, "Industrials": 1}
    assert f'href="{url()}"' in client.get(reverse("finance:ticker", args=["NRVB"])).content.decode()


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ANALYST])
def test_other_roles_are_refused(client_with_roles, companies, role):
    assert client_with_roles(role).get(url()).status_code == 403


def test_anonymous_users_go_to_login(client, companies):
    response = client.get(url())
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_exported_titles_cannot_run_as_spreadsheet_formulas(client_with_roles, companies, make_article,
                                                            seed_version):
    article = make_article('=HYPERLINK("http://evil.example")', score=0.1, version=seed_version)
    ArticleTicker.objects.create(article=article, company=companies["NRVB"], relevance=1, detected_by="manual")
    response = client_with_roles(Role.ANALYST).get(url(), {"export": "headlines"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["title"] for r in rows] == ['\'=HYPERLINK("http://evil.example")']


def test_the_filters_keep_the_weekly_view(client_with_roles, sector_news):
    client = client_with_roles(Role.ANALYST)
    assert '<input type="hidden" name="period" value="week">' in client.get(url(), {"period": "week"}).content.decode()
    assert 'name="period"' not in client.get(url()).content.decode()
