"""Daily prices upload: row checks with reasons, upsert by company and day, bad files, and the ticker page."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.roles import Role
from finance import selectors
from finance.models import DailyPrice, PriceUpload
from finance.services import prices as price_service

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
D1, D2, D3 = (TODAY - timedelta(days=n) for n in (3, 2, 1))
GOOD = f"symbol,date,close\nNRVB,{D1},40.5\nNRVB,{D2},41\nkstr,{D2},12.1234\n"


def upload(client, content, *, name="prices.csv"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(reverse("finance:prices"), {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def closes():
    return {(p.company.symbol, p.date): p.close for p in DailyPrice.objects.select_related("company")}


def test_a_good_file_is_stored_and_summarised(client_with_roles, companies):
    client = client_with_roles(Role.ANALYST)
    response = upload(client, GOOD)
    run = PriceUpload.objects.get()
    assert response["Location"] == reverse("finance:price_upload", args=[run.pk])
    assert (run.rows, run.accepted, run.updated, run.unchanged, run.rejected) == (3, 3, 0, 0, 0)
    assert closes() == {("NRVB", D1): Decimal("40.5"), ("NRVB", D2): Decimal("41"), ("KSTR", D2): Decimal("12.1234")}
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Every row was used." in page.content.decode()


def test_the_same_file_twice_changes_nothing_and_a_new_close_updates(client_with_roles, companies):
    client = client_with_roles(Role.ANALYST)
    upload(client, GOOD)
    upload(client, GOOD)
    again = PriceUpload.objects.order_by("pk").last()
    assert (again.accepted, again.updated, again.unchanged, again.rejected) == (0, 0, 3, 0)
    assert DailyPrice.objects.count() == 3
    upload(client, f"symbol,date,close\nNRVB,{D1},40.50\nNRVB,{D2},42\nNRVB,{D3},43\n")
    third = PriceUpload.objects.order_by("pk").last()
    assert (third.accepted, third.updated, third.unchanged) == (1, 1, 1)
    assert closes()[("NRVB", D2)] == Decimal("42") and DailyPrice.objects.count() == 4


def test_bad_rows_are_rejected_with_reasons_and_downloadable(client_with_roles, companies):
    content = (
        "Symbol;Date;Close;Volume\n"             # row 1: other case, semicolons, an extra column
        f"NRVB;{D1};40.5;100\n"                   # 2 ok
        f"NOPE;{D1};10;1\n"                      # 3
        "NRVB;2026-02-30;10;1\n"                 # 4
        "NRVB;03/02/2026;10;1\n"                 # 5
        f"NRVB;{D2};abc;1\n"                     # 6
        f"NRVB;{D2};0;1\n"                       # 7
        f"NRVB;{D2};-5;1\n"                      # 8
        f"nrvb;{D1};41;1\n"                      # 9: same as row 2
        f";{D1};41;1\n"                          # 10
        f"KSTR;{TODAY + timedelta(days=5)};9;1\n"  # 11
        f"KSTR;{D1};;1\n"                        # 12
        f"KSTR;{D1};NaN;1\n"                     # 13
        f"KSTR;{D1};1e12;1\n"                    # 14
        f"KSTR;{D1};1,234.5;1\n"                 # 15 ok
    )
    client = client_with_roles(Role.ANALYST)
    upload(client, content)
    run = PriceUpload.objects.get()
    assert (run.rows, run.accepted, run.rejected) == (14, 2, 12)
    reasons = {p["row"]: p["reason"] for p in run.problems}
    assert reasons == {
        3: "unknown symbol “NOPE”; add the company first",
        4: "the date “2026-02-30” is not a date (use YYYY-MM-DD, e.g. 2026-03-02)",
        5: "the date “03/02/2026” is not a date (use YYYY-MM-DD, e.g. 2026-03-02)",
        6: "the close “abc” is not a number",
        7: "the close 0 is not above 0",
        8: "the close -5 is not above 0",
        9: "same symbol and date as row 2",
        10: "the symbol is empty",
        11: f"the date {TODAY + timedelta(days=5)} is in the future",
        12: "the close is empty",
        13: "the close “NaN” is not a number",
        14: "the close 1e12 is too large",
    }
    assert closes() == {("NRVB", D1): Decimal("40.5"), ("KSTR", D1): Decimal("1234.5")}
    response = client.get(reverse("finance:price_upload_rejected_csv", args=[run.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["row"], r["symbol"], r["close"]) for r in rows][:3] == [("3", "NOPE", "10"), ("4", "NRVB", "10"),
                                                                        ("5", "NRVB", "10")]
    assert (rows[5]["row"], rows[5]["close"]) == ("8", "'-5")  # spreadsheet-safe
    assert rows[0]["reason"] == "unknown symbol “NOPE”; add the company first"


@pytest.mark.parametrize(("content", "message"), [
    (b"", "The submitted file is empty."),
    (b"\n\n  \n", "prices.csv is empty."),
    ("symbol,day,price\nNRVB,2026-01-02,4\n", "prices.csv has no “date”, “close” columns. The header must name "
     "symbol, date and close (e.g. symbol,date,close); its columns are: symbol, day, price."),
    ("NRVB,2026-01-02,4\n", "prices.csv has no “symbol”, “date”, “close” columns. The header must name symbol, "
     "date and close (e.g. symbol,date,close); its columns are: NRVB, 2026-01-02, 4."),
    ("symbol,date,close\n", "prices.csv has a header but no rows under it."),
    (b"\x00\x01\x02\x03binary\xff\xfe\x00\x00" * 20, None),
])
def test_bad_files_are_refused_with_a_message_and_write_nothing(client_with_roles, companies, content, message):
    response = upload(client_with_roles(Role.ANALYST), content)
    assert response.status_code == 400
    errors = response.context["form"].errors["file"]
    if message is None:  # binary: the shared decoder's own wording
        assert "prices.csv" in errors[0]
    else:
        assert errors == [message]
    assert not DailyPrice.objects.exists() and not PriceUpload.objects.exists()


def test_a_cp1252_or_utf16_file_is_decoded(client_with_roles, companies):
    client = client_with_roles(Role.ANALYST)
    upload(client, f"symbol,date,close,note\nNRVB,{D1},40,Café €\n".encode("cp1252"))
    upload(client, f"symbol,date,close\nKSTR,{D1},12\n".encode("utf-16"))
    assert closes() == {("NRVB", D1): Decimal("40"), ("KSTR", D1): Decimal("12")}


def test_a_huge_file_is_refused(client_with_roles, companies, monkeypatch):
    monkeypatch.setattr(price_service, "PRICES_MAX_BYTES", 40)
    response = upload(client_with_roles(Role.ANALYST), GOOD)
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == [
        "prices.csv is 82\xa0bytes; the limit is 40\xa0bytes. Split it into smaller files."]
    assert not DailyPrice.objects.exists() and not PriceUpload.objects.exists()
    with pytest.raises(price_service.DataError, match="the limit is 40\xa0bytes"):
        price_service.prices_upload(user=None, data=GOOD.encode(), filename="prices.csv")


def test_uploaded_prices_feed_the_ticker_page(client_with_roles, companies):
    client = client_with_roles(Role.ANALYST)
    upload(client, GOOD)
    frame = selectors.price_frame(symbol="NRVB", start=D1, end=TODAY)
    assert frame["close"].tolist() == [40.5, 41.0]
    assert frame["ret"].round(6).tolist()[1] == round(41 / 40.5 - 1, 6)
    chart = client.get(reverse("finance:ticker", args=["NRVB"])).context["chart"]
    assert chart["data"][0]["name"] == "close" and chart["data"][0]["y"] == [40.5, 41.0]


def test_another_analysts_upload_is_404(client_with_roles, make_user, companies):
    run = PriceUpload.objects.create(user=make_user(Role.ANALYST), filename="p.csv")
    client = client_with_roles(Role.ANALYST)
    assert client.get(reverse("finance:price_upload", args=[run.pk])).status_code == 404
    assert client.get(reverse("finance:price_upload_rejected_csv", args=[run.pk])).status_code == 404


def test_the_page_lists_my_recent_uploads(client_with_roles, companies, django_assert_max_num_queries):
    client = client_with_roles(Role.ANALYST)
    for _ in range(3):
        upload(client, GOOD)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("finance:prices"))
    assert len(response.context["uploads"]) == 3


@pytest.mark.parametrize("role", [r for r in Role if r != Role.ANALYST])
def test_other_roles_cannot_upload(client_with_roles, companies, role):
    response = upload(client_with_roles(role), GOOD)
    assert response.status_code == 403
    assert not DailyPrice.objects.exists()


def test_anonymous_users_go_to_login(client, companies):
    response = upload(client, GOOD)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_upload_needs_the_csrf_token(make_user, companies):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ANALYST))
    assert upload(client, GOOD).status_code == 403
    assert not DailyPrice.objects.exists()
