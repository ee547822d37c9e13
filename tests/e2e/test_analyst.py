"""The analyst: log in, upload a CSV of news, watch the scores arrive, open a ticker, schedule a report."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from core.roles import Role
from tests.finance.conftest import active_sentiment, companies  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.worker]

SCORE = re.compile(r"-?\d\.\d\d · (positive|neutral|negative)")


def news_csv(tmp_path):
    # Yesterday's news, so the "yesterday" report covers it.
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    path = tmp_path / "harbor-wire.csv"
    path.write_text(
        "headline,summary,link,date\n"
        f"Norvale Bank profit rose,Record sales and a dividend raised.,https://news.example/1,{day}T09:00:00Z\n"
        f"Kestrel Air shares slumped,Revenue missed forecasts; loss widened.,https://news.example/2,{day}T09:30:00Z\n"
        f"Halvorsen Mining board meeting held,Annual report published.,https://news.example/3,{day}T10:00:00Z\n"
    )
    return path


def test_analyst_journey(journey, ml_worker, make_user, companies, active_sentiment, tmp_path):  # noqa: F811
    make_user(Role.ANALYST, username="ana")
    csv_file = news_csv(tmp_path)
    with ml_worker():
        j = journey()
        page = j.page
        j.login("ana")
        j.goto("/finance/", snap="finance-home")
        page.get_by_role("link", name="Upload articles").first.click()
        page.get_by_label("Source", exact=True).fill("Harbor Wire")
        page.get_by_label("CSV file").set_input_files(str(csv_file))
        j.snap("upload-filled")
        page.get_by_role("button", name="Upload and preview").click()

        # Step 2: the columns are guessed from the header's names; the analyst checks and imports.
        j.see_heading("Check the columns")
        assert page.get_by_label("Title").input_value() == "headline"
        assert page.get_by_label("Published at").input_value() == "date"
        j.snap("upload-columns")
        page.get_by_role("button", name="Import 3 rows").click()
        j.see_heading("Import into Harbor Wire")
        assert "Imported 3 new articles from harbor-wire.csv" in page.locator(".messages").inner_text()
        j.snap("import-run")

        # The scores arrive as the ml worker reads the articles; the dashboard says how far it is.
        j.goto("/finance/dashboard/")
        for _ in range(60):
            if "read 3 of 3 articles" in page.locator("main").inner_text():
                break
            page.wait_for_timeout(1000)
            page.reload()
        assert "read 3 of 3 articles" in page.locator("main").inner_text()
        headline_rows = page.locator("section:has(h2:text('Latest headlines')) tbody tr")
        assert headline_rows.count() == 3
        for row in headline_rows.all():
            assert SCORE.search(row.inner_text()), row.inner_text()
        j.snap("dashboard-scored")

        # Open an article, then its ticker.
        page.get_by_role("link", name="Norvale Bank profit rose").click()
        j.see_heading("Norvale Bank profit rose")
        assert SCORE.search(page.locator("section:has(h2:text('Sentiment'))").inner_text())
        j.snap("article")
        page.get_by_role("link", name="NRVB", exact=True).click()
        j.see_heading("NRVB · Norvale Bank")
        assert page.locator(".stats .big").first.inner_text() == "1"
        assert SCORE.search(page.locator("section:has(h2:text('Headlines'))").inner_text())
        j.snap("ticker")

        # A watchlist, then a weekly report on it.
        j.goto("/finance/watchlists/", snap="watchlists")
        page.get_by_label("Name").fill("Banks and air")
        page.get_by_label("Tickers").fill("NRVB, KSTR")
        page.get_by_role("button", name="Create").click()
        j.see_heading(re.compile("Banks and air"))
        j.snap("watchlist")
        j.goto("/finance/reports/", snap="reports")
        schedule = page.locator("section.card:has(h2:text('Schedule a report'))")
        schedule.get_by_label("Watchlist").select_option(label="Banks and air")
        schedule.get_by_label("Frequency").select_option("weekly")
        schedule.get_by_label("Time of day").fill("07:30")
        schedule.get_by_role("button", name="Schedule").click()
        assert "Scheduled:" in page.locator(".messages").inner_text()
        schedules = page.locator("section.card:has(h2:text('Schedules')) tbody")
        assert re.search(r"Banks and air\s+Weekly \(Mondays\) at 07:30 UTC\s+yes", schedules.inner_text())
        j.snap("report-scheduled")
        now = page.locator("section.card:has(h2:text('Make one now'))")
        now.get_by_label("Watchlist").select_option(label="Banks and air")
        now.get_by_label("Period").select_option("daily")
        now.get_by_role("button", name="Make report").click()
        assert "Report ready." in page.locator(".messages").inner_text()
        assert re.search(r"2 stories about 2 companies[.;]", page.locator("main").inner_text())
        assert re.search(r"NRVB\s+Norvale Bank\s+1\s", page.locator("main table").first.inner_text())
        j.snap("report")
        j.check()
