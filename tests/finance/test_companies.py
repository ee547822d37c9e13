"""Companies page: list and search, add and edit with validation, re-detecting a company in recent articles."""

import csv
import io

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from core.models import TaskRun
from core.roles import Role
from finance import tasks
from finance.models import ArticleTicker, Company, RemovedMention, TickerRedetectRun
from finance.services import companies as company_service

pytestmark = pytest.mark.django_db


def flashes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def add(client, **fields):
    data = {"symbol": "ORBT", "name": "Orbital Freight", "sector": "Industrials", "aliases": "", **fields}
    return client.post(reverse("finance:company_add"), data)


# --- list and search --------------------------------------------------------------------------------


def test_the_list_shows_each_company_with_its_article_count(client_with_roles, companies, make_article,
                                                             django_assert_max_num_queries):
    for i in range(3):
        ArticleTicker.objects.create(article=make_article(f"Norvale {i}"), company=companies["NRVB"],
                                     relevance=1, detected_by="name")
    for i in range(20):
        Company.objects.create(symbol=f"Z{i:02d}", name=f"Zed {i}", sector="Utilities")
    client = client_with_roles(Role.ANALYST)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("finance:companies"))
    counts = {c.symbol: c.article_count for c in response.context["companies"]}
    assert len(counts) == 23
    assert (counts["NRVB"], counts["KSTR"], counts["Z00"]) == (3, 0, 0)
    html = response.content.decode()
    assert "Kestrel Airlines" in html and reverse("finance:sector", args=["Financials"]) in html


@pytest.mark.parametrize(("query", "symbols"), [
    ("nrvb", ["NRVB"]), ("kestrel airl", ["KSTR"]), ("materials", ["HLVM"]), ("Bank", ["NRVB"]), ("nothing", []),
])
def test_search_reads_symbol_name_sector_and_aliases(client_with_roles, companies, query, symbols):
    response = client_with_roles(Role.ANALYST).get(reverse("finance:companies"), {"q": query})
    assert [c.symbol for c in response.context["companies"]] == symbols


def test_the_list_exports_as_csv(client_with_roles, companies):
    response = client_with_roles(Role.ANALYST).get(reverse("finance:companies"), {"export": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["symbol"], r["aliases"], r["articles"]) for r in rows] == [
        ("HLVM", "", "0"), ("KSTR", "Kestrel Airlines", "0"), ("NRVB", "Norvale", "0")]


def test_no_companies_explains_what_to_do(client_with_roles):
    html = client_with_roles(Role.ANALYST).get(reverse("finance:companies")).content.decode()
    assert "No companies yet" in html and reverse("finance:company_add") in html


# --- add and edit -----------------------------------------------------------------------------------


def test_adding_a_company_cleans_symbol_and_aliases_then_offers_re_detection(client_with_roles, companies):
    client = client_with_roles(Role.ANALYST)
    response = add(client, symbol=" orbt ", aliases="  Orbital \n\norbital\nOrbital   Freight Co\n Orbital ")
    company = Company.objects.get(symbol="ORBT")
    assert company.aliases == ["Orbital", "Orbital Freight Co"]
    assert response.status_code == 302
    assert response["Location"] == reverse("finance:company_edit", args=[company.pk]) + "?redetect=1"
    assert flashes(response) == ["ORBT added. Its names changed: re-detect it in recent articles below to add the "
                                 "mentions they hold."]
    html = client.get(response["Location"]).content.decode()
    assert "Re-detect tickers in recent articles" in html
    assert '<option value="Financials">' in html  # the sector datalist


@pytest.mark.parametrize(("symbol", "message"), [
    ("", "This field is required."),
    ("AB CD", "“AB CD” is not a ticker symbol: use up to 10 letters A–Z, digits, dots or hyphens, e.g. BRK.B."),
    ("ABCDEFGHIJK", "“ABCDEFGHIJK” is not a ticker symbol: use up to 10 letters A–Z, digits, dots or hyphens, "
                    "e.g. BRK.B."),
    ("née", "“NÉE” is not a ticker symbol: use up to 10 letters A–Z, digits, dots or hyphens, e.g. BRK.B."),
    ("nrvb", "There is already a company with the symbol NRVB."),
])
def test_bad_symbols_are_refused_with_a_reason(client_with_roles, companies, symbol, message):
    response = add(client_with_roles(Role.ANALYST), symbol=symbol)
    assert response.status_code == 400
    assert response.context["form"].errors["symbol"] == [message]
    assert Company.objects.count() == 3


def test_symbols_may_hold_digits_dots_and_hyphens(client_with_roles):
    assert add(client_with_roles(Role.ANALYST), symbol="brk.b-2").status_code == 302
    assert Company.objects.get().symbol == "BRK.B-2"


def test_name_and_sector_are_needed(client_with_roles):
    response = add(client_with_roles(Role.ANALYST), name="  ", sector="")
    assert response.status_code == 400
    assert response.context["form"].errors == {"name": ["This field is required."],
                                               "sector": ["This field is required."]}


def test_an_overlong_alias_is_refused(client_with_roles):
    response = add(client_with_roles(Role.ANALYST), aliases="x" * 201)
    assert response.context["form"].errors["aliases"] == [
        "The alias “xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…” is 201 characters long; the limit is 200."]
    assert not Company.objects.exists()


def test_editing_keeps_the_symbol_and_says_when_names_changed(client_with_roles, companies):
    client = client_with_roles(Role.ANALYST)
    url = reverse("finance:company_edit", args=[companies["HLVM"].pk])
    assert client.get(url).context["form"].initial["aliases"] == ""
    same = client.post(url, {"symbol": "HLVM", "name": "Halvorsen Mining", "sector": "Energy", "aliases": ""})
    assert same["Location"] == url  # only the sector changed: nothing new to look for
    changed = client.post(url, {"symbol": "hlvm", "name": "Halvorsen Mining", "sector": "Energy",
                                "aliases": "Halvorsen"})
    assert changed["Location"] == url + "?redetect=1"
    company = Company.objects.get(pk=companies["HLVM"].pk)
    assert (company.symbol, company.sector, company.aliases) == ("HLVM", "Energy", ["Halvorsen"])


def test_an_unknown_company_is_404(client_with_roles):
    assert client_with_roles(Role.ANALYST).get(reverse("finance:company_edit", args=[999])).status_code == 404


# --- re-detection ----------------------------------------------------------------------------------


def test_re_detection_adds_mentions_of_new_names_and_keeps_analysts_edits(companies, make_article, make_user):
    analyst = make_user(Role.ANALYST)
    nrvb = companies["NRVB"]
    in_title = make_article("Northbank Group lifts dividend", days_ago=1)
    in_body = make_article("Lenders rally", body="Northbank Group led the gains.", days_ago=2)
    removed = make_article("Northbank Group opens branch", days_ago=3)
    tuned = make_article("Northbank Group, Norvale Bank merge", days_ago=4)
    too_old = make_article("Northbank Group in 2020", days_ago=40)
    unrelated = make_article("Kestrel Air flies more", days_ago=1)
    # An analyst took NRVB off one article and set another's relevance before the alias existed.
    mention = ArticleTicker.objects.create(article=removed, company=nrvb, relevance=1, detected_by="manual")
    company_service.mention_remove(mention=mention, user=analyst)
    kept = ArticleTicker.objects.create(article=tuned, company=nrvb, relevance=1, detected_by="name")
    company_service.mention_set_relevance(mention=kept, relevance="0.3", user=analyst)

    company_service.company_save(company=nrvb, symbol="NRVB", name="Norvale Bank", sector="Financials",
                                 aliases="Norvale\nNorthbank Group")
    scanned, added = company_service.tickers_redetect(company=Company.objects.get(pk=nrvb.pk), days=30)

    assert (scanned, added) == (3, 2)  # in_title, in_body, unrelated; removed and tuned are skipped
    found = {t.article_id: (t.relevance, t.detected_by) for t in ArticleTicker.objects.filter(company=nrvb)}
    assert found == {in_title.pk: (1.0, "name"), in_body.pk: (0.5, "name"), tuned.pk: (0.3, "name")}
    assert RemovedMention.objects.filter(article=removed, company=nrvb).exists()
    assert not ArticleTicker.objects.filter(article__in=[too_old, unrelated], company=nrvb).exists()
    assert company_service.tickers_redetect(company=nrvb, days=30) == (1, 0)  # only `unrelated` is left to read


def test_the_re_detect_action_queues_a_run_and_shows_its_count(client_with_roles, companies, make_article,
                                                                 django_capture_on_commit_callbacks):
    make_article("$NRVB beats", days_ago=1)
    make_article("NRVB misses", days_ago=5)
    client = client_with_roles(Role.ANALYST)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("finance:company_redetect", args=[companies["NRVB"].pk]), {"days": "3"})
    run = TickerRedetectRun.objects.get()
    assert response["Location"] == reverse("finance:redetect_run", args=[run.pk])
    assert (run.state, run.days, run.user.username) == ("queued", 3, response.wsgi_request.user.username)
    assert len(callbacks) == 1  # the task is sent once the run is committed
    assert "refreshes until it is done" in client.get(response["Location"]).content.decode()

    ledger = TaskRun.objects.get(task="finance.redetect_tickers")

    def deliver():  # what the default-queue worker runs with the message sent after commit
        return tasks.redetect_tickers.apply(args=[run.pk], kwargs={"run_id": ledger.pk},
                                            task_id=ledger.celery_task_id).get()

    assert deliver() == {"scanned": 1, "added": 1}
    assert deliver() is None  # a redelivered task finds the run done
    run.refresh_from_db()
    assert (run.state, run.scanned, run.added) == ("done", 1, 1)
    page = client.get(response["Location"])
    assert page.context["run"].added == 1
    assert "Mentions added" in page.content.decode()
    assert ArticleTicker.objects.get(company=companies["NRVB"]).detected_by == "cashtag"


@pytest.mark.parametrize("days", ["0", "367", "x", ""])
def test_re_detection_needs_a_sane_number_of_days(client_with_roles, companies, days):
    response = client_with_roles(Role.ANALYST).post(reverse("finance:company_redetect",
                                                            args=[companies["NRVB"].pk]), {"days": days})
    assert response["Location"] == reverse("finance:company_edit", args=[companies["NRVB"].pk])
    assert not TickerRedetectRun.objects.exists()
    assert flashes(response)


def test_another_analysts_run_is_404(client_with_roles, companies, make_user):
    run = TickerRedetectRun.objects.create(company=companies["NRVB"], user=make_user(Role.ANALYST), days=30)
    assert client_with_roles(Role.ANALYST).get(reverse("finance:redetect_run", args=[run.pk])).status_code == 404


# --- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ANALYST])
def test_other_roles_cannot_list_or_add(client_with_roles, role):
    client = client_with_roles(role)
    assert client.get(reverse("finance:companies")).status_code == 403
    assert add(client).status_code == 403
    assert not Company.objects.exists()


def test_anonymous_users_go_to_login(client):
    response = add(client)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not Company.objects.exists()


def test_the_forms_need_the_csrf_token(make_user, companies):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ANALYST))
    assert add(client).status_code == 403
    assert client.post(reverse("finance:company_redetect", args=[companies["NRVB"].pk]),
                       {"days": "30"}).status_code == 403
    assert Company.objects.count() == 3 and not TickerRedetectRun.objects.exists()
