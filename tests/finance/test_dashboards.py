"""Dashboard and ticker pages: roles, numbers on the page, CSV exports, bad filters, query counts."""

import csv
import io
import os
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.roles import Role
from finance import services
from finance.models import Article, ArticleSentiment, ArticleTicker, DailyPrice
from finance.services.rollup import rollup_rebuild
from mlcore import services as ml_services
from mlcore.models import Family, Task
from tests.workers import require_redis

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
    rollup_rebuild()  # written around the services
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


@pytest.fixture
def shared_cache(settings):
    """The default cache in Redis, as in production (DJANGO_CACHE_URL), under a key prefix of this test's own."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    require_redis(url)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                                   "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def test_analysts_share_one_dashboard_computation(client_with_roles, scored_news, shared_cache):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard"))
    with CaptureQueriesContext(connection) as queries:
        second = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard"))
    assert not [q["sql"] for q in queries.captured_queries if "finance_" in q["sql"]]
    assert "headlines" in first.context and "headlines" not in second.context  # the second is not rendered again
    assert second.context["body"] == first.context["body"] and "Norvale story 0" in second.context["body"]
    # Only the site header is the analyst's own.
    assert first.context["user"] != second.context["user"]
    assert second.context["user"].get_username() in second.content.decode()
    # Another window is another computation.
    other = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard"), {"q": "story 11"})
    assert [h["title"] for h in other.context["headlines"]] == ["Norvale story 11"]


def test_a_cached_dashboard_shows_news_as_soon_as_it_is_scored(client_with_roles, source, companies,
                                                                active_sentiment, shared_cache,
                                                                django_capture_on_commit_callbacks):
    client = client_with_roles(Role.ANALYST)
    assert "No scored news in this window" in client.get(reverse("finance:dashboard")).content.decode()
    result = services.articles_ingest(source=source, rows=[{
        "title": "Norvale Bank profit rose", "body": "Shares jumped.", "url": "",
        "published_at": timezone.now().isoformat()}])
    with django_capture_on_commit_callbacks(execute=True):
        assert services.articles_score(article_ids=result.accepted) == 1
    html = client.get(reverse("finance:dashboard")).content.decode()
    assert "Norvale Bank profit rose" in html and "read 1 of 1 articles" in html


def test_ticker_and_sector_pages_are_shared_until_the_data_changes(client_with_roles, scored_news, shared_cache,
                                                                    make_user, django_capture_on_commit_callbacks):
    from finance.services import companies as company_services

    client = client_with_roles(Role.ANALYST)
    ticker, sector = reverse("finance:ticker", args=["NRVB"]), reverse("finance:sector", args=["Financials"])
    first = {url: client.get(url) for url in (ticker, sector)}
    assert first[ticker].context["summary"]["stories"] == 12
    for url in (ticker, sector):
        again = client_with_roles(Role.ANALYST).get(url)
        assert "summary" not in again.context and again.context["body"] == first[url].context["body"]
    # Other filters are another page.
    assert client.get(ticker, {"start": str(TODAY - timedelta(days=2))}).context["summary"]["stories"] == 3
    # An analyst's edit shows at once on both pages.
    mention = ArticleTicker.objects.filter(company__symbol="NRVB").order_by("article__published_at").first()
    with django_capture_on_commit_callbacks(execute=True):
        company_services.mention_remove(mention=mention, user=make_user(Role.ANALYST))
    assert client.get(ticker).context["summary"]["stories"] == 11
    assert sum(t["stories"] for t in client.get(sector).context["tickers"]) == 11


def test_while_one_request_renders_a_changed_page_the_others_get_the_earlier_rendering(
        client_with_roles, scored_news, shared_cache, make_user, django_capture_on_commit_callbacks):
    from django.core.cache import cache
    from django.http import QueryDict

    from finance import selectors
    from finance.dashboard_views import page_cache_keys
    from finance.services import companies as company_services

    client = client_with_roles(Role.ANALYST)
    url = reverse("finance:ticker", args=["NRVB"])
    assert client.get(url).context["summary"]["stories"] == 12
    with django_capture_on_commit_callbacks(execute=True):
        company_services.mention_remove(mention=ArticleTicker.objects.filter(company__symbol="NRVB").first(),
                                        user=make_user(Role.ANALYST))
    nrvb = ArticleTicker.objects.filter(company__symbol="NRVB").first().company_id
    _, latest, lock = page_cache_keys(url, QueryDict(), selectors.company_generations([nrvb]))
    assert cache.add(lock, 1)  # another request is rendering the changed page
    waiting = client.get(url)
    assert "summary" not in waiting.context and ">12</p>" in waiting.context["body"]  # not rendered again
    cache.delete(latest)  # nothing rendered earlier: the request renders its own
    assert client.get(url).context["summary"]["stories"] == 11
    cache.delete(lock)
    assert ">11</p>" in client.get(url).context["body"]


def test_a_change_about_one_company_leaves_other_companies_pages_cached(
        client_with_roles, scored_news, shared_cache, companies, source, make_user, django_capture_on_commit_callbacks):
    from finance.services import companies as company_services

    hlvm = Article.objects.create(source=source, title="Halvorsen Mining output steady", content_hash="h" * 40,
                                  published_at=timezone.now())
    ArticleSentiment.objects.create(article=hlvm, model_version=scored_news, score=0.1, label="neutral",
                                    p_positive=0.1, p_negative=0.0, p_neutral=0.9)
    ArticleTicker.objects.create(article=hlvm, company=companies["HLVM"], relevance=1.0, detected_by="name")
    rollup_rebuild()
    client = client_with_roles(Role.ANALYST)
    pages = {symbol: reverse("finance:ticker", args=[symbol]) for symbol in ("NRVB", "KSTR", "HLVM")}
    sectors = {name: reverse("finance:sector", args=[name]) for name in ("Materials", "Industrials")}
    for url in [*pages.values(), *sectors.values()]:
        client.get(url)
    # An analyst takes Kestrel off a story about both Norvale and Kestrel.
    mention = ArticleTicker.objects.filter(company__symbol="KSTR").order_by("article__published_at").first()
    with django_capture_on_commit_callbacks(execute=True):
        company_services.mention_remove(mention=mention, user=make_user(Role.ANALYST))
    assert "summary" not in client.get(pages["HLVM"]).context  # still the cached rendering
    assert "tickers" not in client.get(sectors["Materials"]).context
    assert client.get(pages["KSTR"]).context["summary"]["stories"] == 11  # rendered again, without the story
    assert client.get(pages["NRVB"]).context["summary"]["stories"] == 12  # rendered again: its story changed
    assert sum(t["stories"] for t in client.get(sectors["Industrials"]).context["tickers"]) == 11
    # Prices (and a new model) change every company's page.
    from finance.services.prices import prices_upload

    with django_capture_on_commit_callbacks(execute=True):
        prices_upload(user=None, data=b"symbol,date,close\nHLVM,2026-01-05,41.5\n", filename="p.csv")
    assert "summary" in client.get(pages["HLVM"]).context


def test_activating_a_sentiment_model_invalidates_cached_pages(scored_news, shared_cache,
                                                             django_capture_on_commit_callbacks):
    from finance import selectors

    before = selectors.data_generation()
    with django_capture_on_commit_callbacks(execute=True):
        ml_services.model_version_activate(version=ml_services.model_version_register(
            task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER, base_spec="x", name="second"))
    assert selectors.data_generation() == before + 1


def test_a_price_upload_invalidates_cached_dashboards(scored_news, shared_cache, django_capture_on_commit_callbacks):
    from finance import selectors
    from finance.services.prices import prices_upload

    before = selectors.data_generation()
    with django_capture_on_commit_callbacks(execute=True):
        prices_upload(user=None, data=b"symbol,date,close\nNRVB,2026-01-05,41.5\n", filename="p.csv")
    assert selectors.data_generation() == before + 1


def test_without_a_shared_cache_nothing_is_cached(settings):
    from finance import selectors

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert selectors.data_generation() is None


def test_analysts_ticker_edits_invalidate_cached_dashboards(scored_news, shared_cache, make_user,
                                                            django_capture_on_commit_callbacks):
    from finance import selectors
    from finance.services import companies as company_services

    user = make_user(Role.ANALYST)
    mention = ArticleTicker.objects.select_related("article").first()
    steps = [
        lambda: company_services.mention_set_relevance(mention=mention, relevance=0.5, user=user),
        lambda: company_services.mention_remove(mention=mention, user=user),
        lambda: company_services.mention_add(article=mention.article, symbol=mention.company.symbol, relevance=1,
                                             user=user),
    ]
    for step in steps:
        before = selectors.data_generation()
        with django_capture_on_commit_callbacks(execute=True):
            step()
        assert selectors.data_generation() == before + 1


def test_day_charts_tick_by_day_over_a_short_span_and_never_split_a_day():
    import pandas as pd

    from finance import charts

    one_day = pd.DataFrame({"day": [timezone.now().date()], "score": [0.2], "articles": [3]})
    axis = charts.market_figure(one_day)["layout"]["xaxis"]
    assert axis["type"] == "date" and axis["dtick"] == 24 * 60 * 60 * 1000
    start, end = (pd.Timestamp(x) for x in axis["range"])
    assert end - start == pd.Timedelta(days=1)
    days = pd.date_range("2026-01-01", periods=60).date
    long = pd.DataFrame({"day": days, "score": [0.1] * 60, "articles": [1] * 60})
    axis = charts.market_figure(long)["layout"]["xaxis"]
    assert "dtick" not in axis and "range" not in axis  # Plotly spaces the ticks of two months itself


def test_the_ticker_page_lists_the_newest_headlines_and_the_csv_all(client_with_roles, scored_news, source,
                                                                    companies):
    for i in range(12, 60):
        when = timezone.now() - timedelta(hours=i)
        a = Article.objects.create(source=source, title=f"Norvale extra {i}", published_at=when,
                                   content_hash=f"x{i:039d}", url=f"https://harbor.example/x{i}")
        ArticleSentiment.objects.create(article=a, model_version=scored_news, score=0.1, label="neutral",
                                        p_positive=0.3, p_negative=0.2, p_neutral=0.5)
        ArticleTicker.objects.create(article=a, company=companies["NRVB"], relevance=1.0, detected_by="name")
    client = client_with_roles(Role.ANALYST)
    response = client.get(reverse("finance:ticker", args=["NRVB"]))
    assert len(response.context["headlines"]) == 50 and response.context["headlines_total"] == 60
    assert "The newest 50 of 60; the CSV holds every one." in response.content.decode()
    newest = Article.objects.filter(tickers__company=companies["NRVB"]).order_by("-published_at")[:50]
    assert [h["title"] for h in response.context["headlines"]] == [a.title for a in newest]
    exported = client.get(reverse("finance:ticker", args=["NRVB"]), {"export": "headlines"}).content.decode()
    assert len(list(csv.DictReader(io.StringIO(exported)))) == 60
