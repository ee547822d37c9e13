"""The article page: its story, readings per model version, and the tickers an analyst edits there."""

import pytest
from django.test import Client
from django.urls import reverse

from core.roles import Role
from finance.models import ArticleSentiment, ArticleTicker, RemovedMention
from finance.services import companies as company_service
from mlcore import services as ml_services
from mlcore.models import Family, Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(companies, make_article, seed_version):
    """A leader with one syndicated copy; the leader mentions NRVB (by name) and KSTR (in the body)."""
    from finance.models import Source

    leader = make_article("Norvale Bank profit jumps", body="Kestrel Air was a big client. Costs fell.", days_ago=1,
                          score=0.6, version=seed_version)
    copy = make_article("Norvale Bank profit jumps - wire", days_ago=1, leader=leader,
                        on=Source.objects.create(name="Second Wire"))
    ArticleSentiment.objects.filter(article=leader).update(sentences=[
        {"text": "Norvale Bank profit jumps", "label": "positive", "score": 0.8},
        {"text": "Costs fell.", "label": "positive", "score": 0.41}])
    ArticleTicker.objects.create(article=leader, company=companies["NRVB"], relevance=1.0, detected_by="name")
    ArticleTicker.objects.create(article=leader, company=companies["KSTR"], relevance=0.5, detected_by="name")
    return {"leader": leader, "copy": copy}


def url(article):
    return reverse("finance:article", args=[article.pk])


def post(client, article, **data):
    return client.post(url(article), data)


def test_the_page_shows_story_readings_and_tickers(client_with_roles, story, seed_version,
                                                   django_assert_max_num_queries):
    older = ml_services.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER,
                                               base_spec="x", name="older")
    ArticleSentiment.objects.create(article=story["leader"], model_version=older, score=-0.2, label="negative",
                                    p_positive=0.1, p_neutral=0.6, p_negative=0.3)
    client = client_with_roles(Role.ANALYST)
    with django_assert_max_num_queries(12):
        response = client.get(url(story["leader"]))
    assert response.status_code == 200
    ctx = response.context
    assert ctx["sources"] == 2
    assert [a.pk for a in ctx["story"]] == [story["leader"].pk, story["copy"].pk]
    assert [(r.model_version.name, r.is_active, r.score) for r in ctx["readings"]] == [
        ("seed", True, 0.6), ("older", False, -0.2)]
    assert [(m.company.symbol, m.relevance, m.detected_by) for m in ctx["mentions"]] == [
        ("NRVB", 1.0, "name"), ("KSTR", 0.5, "name")]
    html = response.content.decode()
    assert "2 sources" in html and "Costs fell." in html and "+0.41" in html
    # The copy's page names the same story, with the leader linked.
    copy_page = client.get(url(story["copy"]))
    assert copy_page.context["sources"] == 2 and url(story["leader"]) in copy_page.content.decode()


def test_headlines_tables_link_to_the_article_page(client_with_roles, story):
    html = client_with_roles(Role.ANALYST).get(reverse("finance:dashboard")).content.decode()
    assert f'href="{url(story["leader"])}"' in html


def test_an_analyst_adds_a_ticker_which_is_recorded_as_manual(client_with_roles, story, companies):
    client = client_with_roles(Role.ANALYST)
    response = post(client, story["leader"], action="add", symbol="hlvm", relevance="0.25")
    assert response.status_code == 302
    mention = ArticleTicker.objects.get(article=story["leader"], company=companies["HLVM"])
    assert (mention.relevance, mention.detected_by) == (0.25, "manual")
    assert mention.edited_by == response.wsgi_request.user and mention.edited_at is not None


@pytest.mark.parametrize(("data", "message"), [
    ({"symbol": "NOPE", "relevance": "0.5"}, "There is no company with the symbol “NOPE”."),
    ({"symbol": "NRVB", "relevance": "0.5"}, "The article already mentions NRVB; change its relevance instead."),
    ({"symbol": "HLVM", "relevance": "0"}, "The relevance must be above 0 and at most 1."),
    ({"symbol": "HLVM", "relevance": "1.5"}, "The relevance must be above 0 and at most 1."),
    ({"symbol": "HLVM", "relevance": "-0.1"}, "The relevance must be above 0 and at most 1."),
])
def test_adding_refuses_unknown_duplicate_and_out_of_range(client_with_roles, story, data, message):
    response = post(client_with_roles(Role.ANALYST), story["leader"], action="add", **data)
    assert response.status_code == 400
    assert response.context["error"] == message
    assert ArticleTicker.objects.filter(article=story["leader"]).count() == 2


def test_adding_needs_a_number(client_with_roles, story):
    response = post(client_with_roles(Role.ANALYST), story["leader"], action="add", symbol="HLVM", relevance="abc")
    assert response.status_code == 400
    assert response.context["add_form"].errors == {"relevance": ["Enter a number."]}


OUT_OF_RANGE = "The relevance must be above 0 and at most 1."
NOT_A_NUMBER = "The relevance must be a number above 0 and at most 1."


@pytest.mark.parametrize(("value", "status", "stored", "message"), [
    ("0.4", 302, 0.4, ""), ("1", 302, 1.0, ""), ("0", 400, 0.5, OUT_OF_RANGE), ("1.01", 400, 0.5, OUT_OF_RANGE),
    ("nan", 400, 0.5, NOT_A_NUMBER), ("", 400, 0.5, NOT_A_NUMBER),
])
def test_changing_relevance(client_with_roles, story, companies, value, status, stored, message):
    mention = ArticleTicker.objects.get(article=story["leader"], company=companies["KSTR"])
    response = post(client_with_roles(Role.ANALYST), story["leader"], action="relevance", mention=mention.pk,
                    relevance=value)
    assert response.status_code == status
    mention.refresh_from_db()
    assert mention.relevance == stored
    assert (mention.edited_at is not None) == (status == 302)
    if status == 400:
        assert response.context["error"] == message


def test_edits_survive_re_detection(client_with_roles, story, companies):
    client = client_with_roles(Role.ANALYST)
    leader = story["leader"]
    nrvb = ArticleTicker.objects.get(article=leader, company=companies["NRVB"])
    kstr = ArticleTicker.objects.get(article=leader, company=companies["KSTR"])
    assert post(client, leader, action="remove", mention=kstr.pk).status_code == 302
    assert post(client, leader, action="relevance", mention=nrvb.pk, relevance="0.7").status_code == 302
    assert RemovedMention.objects.filter(article=leader, company=companies["KSTR"]).count() == 1

    # NRVB is found in the wire copy, which had no mentions; nothing on the edited leader changes.
    assert company_service.tickers_redetect(company=companies["NRVB"], days=30) == (1, 1)
    assert company_service.tickers_redetect(company=companies["KSTR"], days=30) == (1, 0)
    assert ArticleTicker.objects.get(article=story["copy"]).company == companies["NRVB"]
    assert {(m.company.symbol, m.relevance) for m in ArticleTicker.objects.filter(article=leader)} == {("NRVB", 0.7)}

    # Adding it back by hand lifts the removal.
    assert post(client, leader, action="add", symbol="KSTR", relevance="0.9").status_code == 302
    assert not RemovedMention.objects.exists()


def test_a_mention_of_another_article_is_404(client_with_roles, story, companies, make_article):
    other = make_article("Other")
    mention = ArticleTicker.objects.get(article=story["leader"], company=companies["NRVB"])
    response = post(client_with_roles(Role.ANALYST), other, action="remove", mention=mention.pk)
    assert response.status_code == 404
    assert ArticleTicker.objects.filter(pk=mention.pk).exists()


def test_an_unknown_article_is_404(client_with_roles):
    assert client_with_roles(Role.ANALYST).get(reverse("finance:article", args=[999])).status_code == 404


def test_titles_and_bodies_are_escaped(client_with_roles, make_article):
    item = make_article("<script>alert(1)</script>", body="<b>bold</b>")
    html = client_with_roles(Role.ANALYST).get(url(item)).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html and "<b>bold</b>" not in html


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ANALYST])
def test_other_roles_cannot_see_or_edit(client_with_roles, story, companies, role):
    client = client_with_roles(role)
    assert client.get(url(story["leader"])).status_code == 403
    assert post(client, story["leader"], action="add", symbol="HLVM", relevance="1").status_code == 403
    assert ArticleTicker.objects.filter(article=story["leader"]).count() == 2


def test_anonymous_users_go_to_login(client, story):
    response = client.get(url(story["leader"]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_edits_need_the_csrf_token(make_user, story, companies):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ANALYST))
    mention = ArticleTicker.objects.get(article=story["leader"], company=companies["NRVB"])
    assert post(client, story["leader"], action="remove", mention=mention.pk).status_code == 403
    assert ArticleTicker.objects.filter(pk=mention.pk).exists()
