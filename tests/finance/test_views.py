import codecs
import csv
import io
import os
import time
from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from core.roles import Role
from finance import services, views
from finance import urls as finance_urls
from finance.models import Article, Company, IngestRun, Source, Watchlist

pytestmark = pytest.mark.django_db

NEWS_CSV = (
    "Headline,Summary,Link,Date\n"
    "Norvale Bank profit jumps 18%,Norvale said loans grew.,https://harbor.example/a,2025-03-02T14:30:00Z\n"
    "Kestrel Air cuts guidance,\"Fuel costs bite, it said.\",https://harbor.example/b,2025-03-03\n"
    "Halvorsen Mining halts mine,Flooding at the pit.,,2025-03-04 09:00\n"
)


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def pending_files():
    folder = services.uploads._pending_folder()
    return sorted(folder.glob("*.csv")) if folder.exists() else []


def flashes(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def upload(client, content, *, name="news.csv", source="Harbor Wire", timezone="UTC"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(reverse("finance:upload"), {
        "source": source, "timezone": timezone, "file": SimpleUploadedFile(name, data, content_type="text/csv")})


def confirm(client, step2, **mapping):
    """Post step 2 as preselected, with `mapping` overriding columns (None for "none")."""
    form = step2.context["form"]
    data = {"upload": form["upload"].value()}
    for name in services.CSV_FIELDS:
        value = mapping.get(name, form[name].value())
        data[name] = value or ""
    return client.post(reverse("finance:upload_confirm"), data)


def import_csv(client, content, **kwargs):
    step2 = upload(client, content, **kwargs)
    assert step2.status_code == 200, step2.content.decode()[:2000]
    return confirm(client, step2)


def make_run(user, source, **extra):
    fields = {"filename": "news.csv", "rows": 3, "accepted": 1, "duplicates": 1, "rejected": 1, "problems": [
        {"row": 2, "title": "Dup", "reason": "already loaded earlier", "kind": "duplicate"},
        {"row": 3, "title": "Bad", "reason": "the title is empty", "kind": "rejected"}], **extra}
    return IngestRun.objects.create(user=user, source=source, via=IngestRun.Via.CSV, **fields)


# --- permissions ----------------------------------------------------------------------------------

# url name -> (its argument: a run id, a ticker symbol or none; method; what the analyst who owns the run gets)
ENDPOINTS = {
    "finance:index": (None, "get", 200),
    "finance:dashboard": (None, "get", 200),
    "finance:ticker": ("symbol", "get", 200),
    "finance:upload": (None, "get", 200),
    "finance:feeds": (None, "get", 200),
    "finance:watchlists": (None, "get", 200),
    "finance:reports": (None, "get", 200),
    "finance:report": ("report", "get", 200),
    "finance:report_schedule_delete": ("schedule", "post", 302),
    "finance:watchlist": ("watchlist", "get", 200),
    "finance:watchlist_delete": ("watchlist", "post", 302),
    "finance:feed_poll": ("feed", "post", 302),  # nothing listens there: the error is flashed
    "finance:upload_confirm": (None, "post", 400),  # an empty confirm names no upload
    "finance:ingest_run": ("run", "get", 200),
    "finance:ingest_run_problems_csv": ("run", "get", 200),
    # companies, articles, prices and sectors (tests/finance/test_companies.py and neighbours test them in depth)
    "finance:companies": (None, "get", 200),
    "finance:company_add": (None, "get", 200),
    "finance:company_edit": ("company", "get", 200),
    "finance:company_redetect": ("company", "post", 302),  # no days posted: back to the company with a message
    "finance:redetect_run": ("redetect", "get", 200),
    "finance:article": ("article", "get", 200),
    "finance:prices": (None, "get", 200),
    "finance:price_upload": ("prices", "get", 200),
    "finance:price_upload_rejected_csv": ("prices", "get", 200),
    "finance:sector": ("sector", "get", 200),
}


def url_for(name, run_id):
    arg = ENDPOINTS[name][0]
    if arg == "run":
        return reverse(name, args=[run_id])
    if arg in ("report", "schedule"):
        from datetime import date, time

        from django.utils import timezone

        from finance.models import Report, ReportSchedule

        owner = IngestRun.objects.get(pk=run_id).user
        mine = Watchlist.objects.get_or_create(owner=owner, name="Mine")[0]
        if arg == "report":
            report = Report.objects.get_or_create(watchlist=mine, period_start=date(2026, 1, 1),
                                                  period_end=date(2026, 1, 1),
                                                  defaults={"owner": owner, "generated_at": timezone.now(),
                                                            "summary": {"watchlist": "Mine", "stories": 0,
                                                                        "companies": [], "movers": [],
                                                                        "top_positive": [], "top_negative": []}})[0]
            return reverse(name, args=[report.pk])
        schedule = ReportSchedule.objects.get_or_create(watchlist=mine, frequency="daily",
                                                        defaults={"owner": owner, "time_of_day": time(7)})[0]
        return reverse(name, args=[schedule.pk])
    if arg == "watchlist":
        owner = IngestRun.objects.get(pk=run_id).user
        return reverse(name, args=[Watchlist.objects.get_or_create(owner=owner, name="Mine")[0].pk])
    if arg == "feed":
        feed, _ = Source.objects.get_or_create(name="Dead feed", defaults={"feed_url": "http://127.0.0.1:9/feed.xml"})
        return reverse(name, args=[feed.pk])
    if arg == "symbol":
        Company.objects.get_or_create(symbol="NRVB", defaults={"name": "Norvale Bank", "sector": "Financials"})
        return reverse(name, args=["NRVB"])
    if arg in ("company", "redetect", "sector"):
        from finance.models import TickerRedetectRun

        company = Company.objects.get_or_create(symbol="NRVB", defaults={"name": "Norvale Bank",
                                                                         "sector": "Financials"})[0]
        if arg == "company":
            return reverse(name, args=[company.pk])
        if arg == "sector":
            return reverse(name, args=[company.sector])
        owner = IngestRun.objects.get(pk=run_id).user
        return reverse(name, args=[TickerRedetectRun.objects.create(company=company, user=owner, days=30).pk])
    if arg == "article":
        run = IngestRun.objects.get(pk=run_id)
        item = Article.objects.get_or_create(content_hash="f" * 40, defaults={
            "source": run.source, "title": "Norvale Bank opens", "published_at": datetime(2026, 1, 2, tzinfo=UTC)})[0]
        return reverse(name, args=[item.pk])
    if arg == "prices":
        from finance.models import PriceUpload

        owner = IngestRun.objects.get(pk=run_id).user
        return reverse(name, args=[PriceUpload.objects.create(user=owner, filename="p.csv").pk])
    return reverse(name)


def test_the_permission_table_covers_every_finance_url():
    assert {f"finance:{pattern.name}" for pattern in finance_urls.urlpatterns} == set(ENDPOINTS)


@pytest.mark.parametrize(("name", "role"), [(name, role) for name in ENDPOINTS for role in [*Role, None]])
def test_only_analysts_open_finance_pages(client, make_user, source, name, role):
    owner = make_user(role or Role.ANALYST)
    if role:
        client.force_login(owner)
    url = url_for(name, make_run(owner, source).pk)
    response = getattr(client, ENDPOINTS[name][1])(url)
    if role is None:
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('login')}?next={url}"
    else:
        assert response.status_code == (ENDPOINTS[name][2] if role == Role.ANALYST else 403)


def test_a_user_without_a_role_is_refused(client_with_roles, source, make_user):
    client = client_with_roles()
    run = make_run(make_user(Role.ANALYST), source)
    for name, (_, method, _) in ENDPOINTS.items():
        assert getattr(client, method)(url_for(name, run.pk)).status_code == 403, name


def test_confirm_refuses_get_and_pages_refuse_post(client, make_user, source):
    analyst = make_user(Role.ANALYST)
    client.force_login(analyst)
    assert client.get(reverse("finance:upload_confirm")).status_code == 405
    assert client.post(reverse("finance:index")).status_code == 405
    run = make_run(analyst, source)
    assert client.post(reverse("finance:ingest_run", args=[run.pk])).status_code == 405


def test_uploads_need_the_csrf_token(make_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ANALYST))
    assert upload(client, NEWS_CSV).status_code == 403
    assert client.post(reverse("finance:upload_confirm"), {"upload": "0" * 32}).status_code == 403
    assert pending_files() == []


# --- upload, happy path ---------------------------------------------------------------------------


def test_upload_previews_guesses_columns_then_imports(client_with_roles, companies, django_capture_on_commit_callbacks):
    client = client_with_roles(Role.ANALYST)
    step1 = client.get(reverse("finance:upload"))
    assert step1.status_code == 200 and b'list="finance-sources"' in step1.content

    step2 = upload(client, NEWS_CSV)
    assert step2.status_code == 200
    assert step2.templates[0].name == "finance/upload_mapping.html"
    preview = step2.context["preview"]
    assert preview.header == ["Headline", "Summary", "Link", "Date"]
    assert preview.delimiter == "," and preview.total_rows == 3 and preview.ragged_rows == 0
    assert preview.rows[1] == ["Kestrel Air cuts guidance", "Fuel costs bite, it said.", "https://harbor.example/b",
                               "2025-03-03"]
    form = step2.context["form"]
    assert {name: form[name].value() for name in services.CSV_FIELDS} == {
        "title": "Headline", "body": "Summary", "url": "Link", "published_at": "Date"}
    body = step2.content.decode()
    assert "Norvale Bank profit jumps 18%" in body and "Import 3 rows" in body
    assert len(pending_files()) == 1 and not Article.objects.exists() and not Source.objects.exists()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = confirm(client, step2)
    run = IngestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("finance:ingest_run", args=[run.pk])
    assert len(callbacks) == 1  # scoring is queued once the import commits
    assert (run.via, run.filename, run.source.name, run.source.kind) == ("csv", "news.csv", "Harbor Wire", "csv")
    assert run.user == response.wsgi_request.user
    assert (run.rows, run.accepted, run.duplicates, run.rejected, run.problems) == (3, 3, 0, 0, [])
    assert flashes(response) == ["Imported 3 new articles from news.csv into Harbor Wire; 0 duplicates and 0 "
                                 "rejected rows."]
    kestrel = Article.objects.get(title="Kestrel Air cuts guidance")
    assert kestrel.body == "Fuel costs bite, it said." and kestrel.url == "https://harbor.example/b"
    assert kestrel.published_at == datetime(2025, 3, 3, tzinfo=UTC)
    assert {t.company.symbol for t in kestrel.tickers.select_related("company")} == {"KSTR"}
    assert pending_files() == [] and client.session[views.PENDING_SESSION_KEY] == {}

    page = client.get(response["Location"])
    assert page.status_code == 200 and "Every row was added." in page.content.decode()


def test_naive_times_are_read_in_the_chosen_zone(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    import_csv(client, "title,published_at\nFrankfurt open,2025-07-01 09:00\n", timezone="Europe/Berlin")
    assert Article.objects.get().published_at == datetime(2025, 7, 1, 7, 0, tzinfo=UTC)


def test_without_a_published_column_articles_are_dated_now(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    step2 = upload(client, "title,published_at\nUndated story,2025-01-01\n")
    before = datetime.now(UTC)
    confirm(client, step2, published_at=None)
    assert Article.objects.get().published_at >= before.replace(microsecond=0)


def test_an_existing_source_is_reused_and_offered(client_with_roles, source):
    client = client_with_roles(Role.ANALYST)
    assert '<option value="Harbor Wire">' in client.get(reverse("finance:upload")).content.decode()
    import_csv(client, NEWS_CSV, source="  harbor   wire ")
    assert Source.objects.get() == source and IngestRun.objects.get().source == source


# --- encodings and delimiters ---------------------------------------------------------------------


def test_a_cp1252_file_is_decoded(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    content = "title,body,published_at\nCafé chain Norvale raises €2bn,Prices in € rose.,2025-05-01\n".encode("cp1252")
    assert b"\x80" in content  # the euro sign, not UTF-8
    step2 = upload(client, content)
    assert step2.context["preview"].rows == [["Café chain Norvale raises €2bn", "Prices in € rose.", "2025-05-01"]]
    assert confirm(client, step2).status_code == 302
    article = Article.objects.get()
    assert (article.title, article.body) == ("Café chain Norvale raises €2bn", "Prices in € rose.")


def test_a_utf8_file_with_a_byte_order_mark(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    step2 = upload(client, codecs.BOM_UTF8 + "title,published_at\nZürich café opens,2025-05-01\n".encode())
    assert step2.context["preview"].header == ["title", "published_at"]
    assert step2.context["form"]["title"].value() == "title"
    confirm(client, step2)
    assert Article.objects.get().title == "Zürich café opens"


def test_a_semicolon_separated_file(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    content = ("titel;text;link;datum;headline\n"
               "ignored;Kestrel, Norvale and others rallied;https://harbor.example/c;2025-02-01;Markets rally\n")
    step2 = upload(client, content)
    preview = step2.context["preview"]
    assert preview.delimiter == ";" and preview.header == ["titel", "text", "link", "datum", "headline"]
    assert preview.guess == {"title": "headline", "body": "text", "url": "link", "published_at": None}
    assert "semicolon-separated" in step2.content.decode()
    confirm(client, step2, published_at="datum")
    article = Article.objects.get()
    assert (article.title, article.body) == ("Markets rally", "Kestrel, Norvale and others rallied")


def test_columns_with_unknown_names_are_chosen_by_hand(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    step2 = upload(client, "Überschrift,Inhalt,Zeitpunkt\nNorvale steigt,Mehr Gewinn.,2025-04-01T08:00:00+02:00\n")
    assert step2.context["preview"].guess == {"title": None, "body": None, "url": None, "published_at": None}
    assert "Choose a column" in step2.content.decode()
    confirm(client, step2, title="Überschrift", body="Inhalt", published_at="Zeitpunkt")
    article = Article.objects.get()
    assert (article.title, article.body) == ("Norvale steigt", "Mehr Gewinn.")
    assert article.published_at == datetime(2025, 4, 1, 6, 0, tzinfo=UTC)


# --- files that are refused -----------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01", "does not look like a text file"),
    (b"", "The submitted file is empty."),
    (b"  \n\n", "news.csv is empty."),
    (b"title,body\n", "news.csv has a header but no rows under it."),
    (b"Norvale rallies,https://harbor.example/a,2025-03-02\n", "does not start with a header row"),
    (b'title,body\n"Norvale,never closed\nKestrel,b\n', "row 2: a quoted value that starts here is not closed"),
])
def test_unusable_files_are_refused_with_the_reason(client_with_roles, content, message):
    response = upload(client_with_roles(Role.ANALYST), content)
    assert response.status_code == 400
    assert response.templates[0].name == "finance/upload.html"
    assert message in " ".join(response.context["form"].errors["file"])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert pending_files() == [] and not IngestRun.objects.exists() and not Source.objects.exists()


def test_a_file_over_the_limit_is_refused_before_it_is_read(client_with_roles, monkeypatch):
    monkeypatch.setattr(services.uploads, "CSV_MAX_BYTES", 50)
    response = upload(client_with_roles(Role.ANALYST), NEWS_CSV)
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == [  # filesizeformat keeps number and unit together
        f"news.csv is {len(NEWS_CSV)}\xa0bytes; the limit is 50\xa0bytes. Split it into smaller files."]
    assert pending_files() == [] and not IngestRun.objects.exists()
    with pytest.raises(services.uploads.DataError, match="the limit is 50\xa0bytes"):
        services.csv_preview(data=NEWS_CSV.encode(), filename="news.csv")


# --- step 2: the mapping --------------------------------------------------------------------------


def test_the_title_must_be_mapped_and_each_column_used_once(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    step2 = upload(client, NEWS_CSV)
    response = confirm(client, step2, title=None)
    assert response.status_code == 400
    assert response.context["form"].errors["title"] == ["Choose the column that holds the title."]
    assert response.context["preview"].total_rows == 3  # the preview is shown again

    response = confirm(client, step2, body="Headline")
    assert response.status_code == 400
    assert response.context["form"].errors["body"] == ["“Headline” is already the title column; use each column once."]

    response = confirm(client, step2, url="No such column")
    assert response.status_code == 400 and "url" in response.context["form"].errors
    assert not IngestRun.objects.exists() and not Article.objects.exists()

    assert confirm(client, step2).status_code == 302  # the upload is still waiting
    assert Article.objects.count() == 3


def test_another_users_upload_cannot_be_confirmed(client, make_user):
    owner, other = make_user(Role.ANALYST), make_user(Role.ANALYST)
    client.force_login(owner)
    step2 = upload(client, NEWS_CSV)
    token = step2.context["form"]["upload"].value()

    intruder = Client()
    intruder.force_login(other)
    data = {"upload": token, "title": "Headline", "body": "", "url": "", "published_at": "Date"}
    response = intruder.post(reverse("finance:upload_confirm"), data)
    assert response.status_code == 400
    assert "no longer waiting to be imported" in response.content.decode()
    # Not even with the token copied into the intruder's session.
    session = intruder.session
    session[views.PENDING_SESSION_KEY] = {token: {**client.session[views.PENDING_SESSION_KEY][token],
                                                  "owner": other.pk}}
    session.save()
    assert intruder.post(reverse("finance:upload_confirm"), data).status_code == 400
    assert not IngestRun.objects.exists() and not Article.objects.exists() and len(pending_files()) == 1


@pytest.mark.parametrize("token", ["", "../../secret_key", "0" * 32])
def test_unknown_upload_tokens_are_refused(client_with_roles, token):
    response = client_with_roles(Role.ANALYST).post(reverse("finance:upload_confirm"), {"upload": token,
                                                                                         "title": "Headline"})
    assert response.status_code == 400 and not IngestRun.objects.exists()


def test_an_upload_older_than_a_day_is_refused(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    step2 = upload(client, NEWS_CSV)
    [kept] = pending_files()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(kept, (two_days_ago, two_days_ago))
    assert confirm(client, step2).status_code == 400
    assert not IngestRun.objects.exists()
    upload(client, NEWS_CSV)  # the next upload clears out old files
    assert kept not in pending_files() and len(pending_files()) == 1


def test_an_upload_is_imported_once(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    step2 = upload(client, NEWS_CSV)
    assert confirm(client, step2).status_code == 302
    assert confirm(client, step2).status_code == 400
    assert IngestRun.objects.count() == 1


# --- problems -------------------------------------------------------------------------------------


PROBLEM_CSV = (
    "title,body,url,published_at\n"
    "Norvale Bank profit jumps,Loans grew.,https://harbor.example/a,2025-03-02\n"
    "=Kestrel wins order,Big order.,ftp://harbor.example/b,2025-03-02\n"
    "\n"
    "Halvorsen halts mine,Flooding.,,next tuesday\n"
    "Norvale Bank profit jumps,Loans grew.,,2025-03-02\n"
    "Too,many,fields,here,2025-03-02\n"
    "Kestrel Air cuts guidance,Fuel.,,2025-03-05\n"
)


def test_bad_rows_are_reported_with_their_row_in_the_file(client_with_roles):
    client = client_with_roles(Role.ANALYST)
    response = import_csv(client, PROBLEM_CSV, name="mixed.csv")
    run = IngestRun.objects.get()
    assert (run.rows, run.accepted, run.duplicates, run.rejected) == (6, 2, 1, 3)
    assert run.problems == [
        {"row": 3, "title": "=Kestrel wins order", "kind": "rejected",
         "reason": "the url 'ftp://harbor.example/b' is not an http(s) address"},
        {"row": 5, "title": "Halvorsen halts mine", "kind": "rejected",
         "reason": "the published time 'next tuesday' is not a date (use e.g. 2026-11-29T14:30:00Z)"},
        {"row": 6, "title": "Norvale Bank profit jumps", "kind": "duplicate", "reason": "same article as row 2"},
        {"row": 7, "title": "Too", "kind": "rejected",
         "reason": "has 5 fields, the header has 4 (a value that holds the delimiter needs quotes)"},
    ]
    page = client.get(response["Location"]).content.decode()
    assert "next tuesday" in page and "same article as row 2" in page and "Download all as CSV" in page

    download = client.get(reverse("finance:ingest_run_problems_csv", args=[run.pk]))
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == f'attachment; filename="ingest-run-{run.pk}-problems.csv"'
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["row", "title", "reason"]
    assert rows[1] == ["3", "'=Kestrel wins order", "the url 'ftp://harbor.example/b' is not an http(s) address"]
    assert [row[0] for row in rows[1:]] == ["3", "5", "6", "7"]


def test_the_run_page_shows_the_first_problems_and_the_download_has_all(client, make_user, source, monkeypatch):
    monkeypatch.setattr(views, "PROBLEMS_SHOWN", 2)
    owner = make_user(Role.ANALYST)
    problems = [{"row": n, "title": f"Story {n}", "reason": "the title is empty", "kind": "rejected"}
                for n in range(2, 7)]
    run = make_run(owner, source, rows=5, accepted=0, duplicates=0, rejected=5, problems=problems)
    client.force_login(owner)
    body = client.get(reverse("finance:ingest_run", args=[run.pk])).content.decode()
    assert "The first 2 of 5." in body and "Story 3" in body and "Story 4" not in body
    download = client.get(reverse("finance:ingest_run_problems_csv", args=[run.pk])).content.decode("utf-8-sig")
    assert len(download.strip().splitlines()) == 6


def test_uploading_the_same_file_again_gives_duplicates(client_with_roles, django_capture_on_commit_callbacks):
    client = client_with_roles(Role.ANALYST)
    with django_capture_on_commit_callbacks(execute=False):
        import_csv(client, NEWS_CSV)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = import_csv(client, NEWS_CSV)
    assert Article.objects.count() == 3 and not callbacks
    again = IngestRun.objects.first()
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, 0)
    assert {p["reason"] for p in again.problems} == {"already loaded earlier"}
    assert [p["row"] for p in again.problems] == [2, 3, 4]
    assert "0 new articles" in flashes(response)[0]


def test_another_analysts_run_is_404(client, make_user, source):
    run = make_run(make_user(Role.ANALYST), source)
    client.force_login(make_user(Role.ANALYST))
    assert client.get(reverse("finance:ingest_run", args=[run.pk])).status_code == 404
    assert client.get(reverse("finance:ingest_run_problems_csv", args=[run.pk])).status_code == 404
    assert client.get(reverse("finance:ingest_run", args=[999_999])).status_code == 404


# --- landing page ---------------------------------------------------------------------------------


def test_index_without_runs_explains_what_to_upload(client_with_roles):
    body = client_with_roles(Role.ANALYST).get(reverse("finance:index")).content.decode()
    assert "No articles imported yet" in body and services.CSV_EXAMPLE_HEADER in body
    assert f'href="{reverse("finance:upload")}"' in body


def test_index_lists_only_my_ten_latest_runs(client, make_user, source, django_assert_max_num_queries):
    me, other = make_user(Role.ANALYST), make_user(Role.ANALYST)
    mine = [make_run(me, Source.objects.create(name=f"Wire {n}"), filename=f"mine-{n}.csv") for n in range(12)]
    theirs = make_run(other, source, filename="theirs.csv")
    client.force_login(me)
    # session, user, roles, runs with their source
    with django_assert_max_num_queries(4):
        response = client.get(reverse("finance:index"))
    assert [run.pk for run in response.context["runs"]] == [run.pk for run in reversed(mine)][:10]
    body = response.content.decode()
    assert "mine-11.csv" in body and "mine-1.csv" not in body and "theirs.csv" not in body
    assert f'href="{reverse("finance:ingest_run", args=[mine[-1].pk])}"' in body
    assert theirs.pk not in [run.pk for run in response.context["runs"]]


def test_the_admin_lists_runs(client, make_user, source):
    run = make_run(make_user(Role.ANALYST), source)
    client.force_login(make_user(is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:finance_ingestrun_changelist"))
    assert response.status_code == 200 and "news.csv" in response.content.decode()
    assert client.get(reverse("admin:finance_ingestrun_change", args=[run.pk])).status_code == 200
