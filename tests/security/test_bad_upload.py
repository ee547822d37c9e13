"""Bad files (tests/badinput) through every upload: news CSV, prices CSV, course material, essays, datasets.

Each is refused with a 4xx and a message that names the problem, or accepted with every rejected row reported;
never a 500, never a partial write.
"""

import csv
import html
import io
import unicodedata

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.roles import Role
from education.models import Course, CourseMaterial, Essay, EssayVersion, MaterialChunk
from finance.models import Article, Company, DailyPrice, IngestRun, PriceUpload, Source
from mlcore.models import Dataset
from tests.badinput import HTML_ESCAPED, HTML_PAYLOADS, one_mb_field_csv, one_mb_line, read

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def counts(*models) -> dict:
    return {model.__name__: model.objects.count() for model in models}


def file_of(name: str, data: bytes | None = None, upload_as: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(upload_as or name, read(name) if data is None else data)


def big(name: str) -> bytes:
    return {"one_mb_line": one_mb_line(), "one_mb_field": one_mb_field_csv()}[name]


# --- news CSV (finance upload, then upload_confirm) -----------------------------------------------

NEWS_MODELS = (Article, IngestRun, Source)

# file -> words the refusal must contain (the upload step refuses it: 400, nothing written)
NEWS_REFUSED = {
    "csv_unbalanced_quotes.csv": "quoted value that starts here is not closed",
    "csv_no_header.csv": "does not start with a header row",
    "csv_only_header.csv": "has a header but no rows",
    "csv_nul_bytes.csv": "does not look like a text file",
    "png_as.csv": "does not look like a text file",
    "zip_as.csv": "does not look like a text file",
    "empty.txt": "is empty",
    "whitespace.txt": "is empty",
    "pdf_as.txt": "is a PDF document, not a text file",
    "one_mb_line": "the header row could not be read as CSV (field larger than field limit",
}


@pytest.fixture
def analyst(client, make_user):
    client.force_login(make_user(Role.ANALYST))
    return client


def news_upload(client, name: str, data: bytes):
    return client.post(reverse("finance:upload"), {
        "source": "Bad Wire", "timezone": "UTC", "file": SimpleUploadedFile(name, data)})


def news_confirm(client, preview_response, **mapping):
    token = preview_response.context["form"].initial["upload"]
    return client.post(reverse("finance:upload_confirm"), {"upload": token, **mapping})


@pytest.mark.parametrize("name", list(NEWS_REFUSED))
def test_news_csv_refused_with_reason(analyst, name):
    before = counts(*NEWS_MODELS)
    data = big(name) if name.startswith("one_mb") else read(name)
    response = news_upload(analyst, name if "." in name else f"{name}.csv", data)
    assert response.status_code == 400
    assert NEWS_REFUSED[name] in page_text(response)
    assert counts(*NEWS_MODELS) == before


FULL_MAPPING = {"title": "title", "body": "body", "url": "url", "published_at": "published_at"}


@pytest.mark.parametrize(("name", "accepted", "rejected_rows"), [
    ("csv_truncated_mid_row.csv", 2, [4]),
    ("csv_ragged_rows.csv", 2, [3, 4]),
])
def test_news_csv_bad_rows_are_reported_not_dropped(analyst, name, accepted, rejected_rows):
    preview = news_upload(analyst, name, read(name))
    assert preview.status_code == 200
    response = news_confirm(analyst, preview, **FULL_MAPPING)
    assert response.status_code == 302
    run = IngestRun.objects.get()
    assert (run.accepted, run.rejected, run.rows) == (accepted, len(rejected_rows), accepted + len(rejected_rows))
    assert Article.objects.count() == accepted
    assert [p["row"] for p in run.problems if p["kind"] == "rejected"] == rejected_rows
    page = page_text(analyst.get(response["Location"]))
    assert all("fields, the header has 4" in p["reason"] for p in run.problems)
    assert run.problems[0]["reason"] in page


@pytest.mark.parametrize("name", ["csv_utf16.csv", "csv_latin1.csv"])
def test_news_csv_other_encodings_are_decoded_not_garbled(analyst, name):
    preview = news_upload(analyst, name, read(name))
    assert preview.status_code == 200
    assert news_confirm(analyst, preview, **FULL_MAPPING).status_code == 302
    article = Article.objects.get()
    assert (article.title, article.body) == ("Café Norvale profit rose", "Zürich office")


def test_news_csv_utf8_bom_does_not_hide_the_title_column(analyst):
    preview = news_upload(analyst, "bom.csv", read("csv_bom_utf8.csv"))
    assert preview.status_code == 200 and preview.context["preview"].guess["title"] == "title"
    assert news_confirm(analyst, preview, **FULL_MAPPING).status_code == 302
    assert Article.objects.get().title == "Norvale Bank profit rose"


def test_news_csv_invalid_utf8_is_read_without_replacement_characters(analyst):
    preview = news_upload(analyst, "bad.csv", read("csv_invalid_utf8.csv"))
    assert preview.status_code == 200  # read as Windows text: every byte is some character
    assert news_confirm(analyst, preview, **FULL_MAPPING).status_code == 302
    run = IngestRun.objects.get()
    assert run.accepted + run.rejected == 1
    assert all("\ufffd" not in a.title for a in Article.objects.all())


def test_news_csv_with_unknown_columns_asks_for_the_title_column(analyst):
    preview = news_upload(analyst, "cols.csv", read("csv_wrong_columns.csv"))
    assert preview.status_code == 200
    assert preview.context["preview"].guess == {"title": None, "body": None, "url": None, "published_at": None}
    before = counts(*NEWS_MODELS)
    response = news_confirm(analyst, preview)
    assert response.status_code == 400
    assert "Choose the column that holds the title." in page_text(response)
    assert counts(*NEWS_MODELS) == before


def test_news_csv_with_a_1mb_field_rejects_that_row_with_its_reason(analyst):
    preview = news_upload(analyst, "big.csv", one_mb_field_csv())
    assert preview.status_code == 200
    assert news_confirm(analyst, preview, **FULL_MAPPING).status_code == 302
    run = IngestRun.objects.get()
    assert (run.accepted, run.rejected) == (0, 1)
    assert "field larger than field limit" in run.problems[0]["reason"]  # reported with its row, not dropped
    assert run.problems[0]["row"] == 2
    assert Article.objects.count() == 0


def test_news_csv_formula_titles_are_neutralised_in_the_problems_export(analyst):
    preview = news_upload(analyst, "formula.csv", read("csv_formula_payloads.csv"))
    assert news_confirm(analyst, preview, **FULL_MAPPING).status_code == 302
    run = IngestRun.objects.get()
    assert (run.accepted, run.duplicates) == (4, 4)
    export = analyst.get(reverse("finance:ingest_run_problems_csv", args=[run.pk]))
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))[1:]
    assert len(rows) == 4
    assert all(title.startswith("'") and title[1] in "=+-@" for _, title, _ in rows)


def test_news_csv_html_in_fields_is_escaped_on_the_article_page(analyst):
    preview = news_upload(analyst, "html.csv", read("csv_html_payloads.csv"))
    assert news_confirm(analyst, preview, **FULL_MAPPING).status_code == 302
    article = Article.objects.get()
    assert article.title.startswith(HTML_PAYLOADS[0])  # stored as sent: escaping is the template's job
    content = analyst.get(reverse("finance:article", args=[article.pk])).content.decode()
    for raw, escaped in zip(HTML_PAYLOADS, HTML_ESCAPED, strict=True):
        assert raw not in content
        assert escaped in content


# --- prices CSV ----------------------------------------------------------------------------------


@pytest.fixture
def norvale(db):
    return Company.objects.create(symbol="NRVB", name="Norvale Bank", sector="Financials")


@pytest.mark.parametrize(("name", "message"), [
    ("prices_no_header.csv", "column"),
    ("png_as.csv", "does not look like a text file"),
    ("zip_as.csv", "does not look like a text file"),
    ("empty.txt", "is empty"),
    ("csv_unbalanced_quotes.csv", "column"),
])
def test_prices_csv_refused_with_reason(analyst, norvale, name, message):
    before = counts(DailyPrice, PriceUpload)
    response = analyst.post(reverse("finance:prices"), {"file": file_of(name, upload_as="prices.csv")})
    assert response.status_code == 400
    assert message in page_text(response)
    assert counts(DailyPrice, PriceUpload) == before


def test_prices_csv_one_mb_line_refused(analyst, norvale):
    response = analyst.post(reverse("finance:prices"), {"file": SimpleUploadedFile("p.csv", one_mb_line())})
    assert response.status_code == 400
    assert "line 1: the file cannot be read as CSV (field larger than field limit" in page_text(response)
    assert DailyPrice.objects.count() == 0


def test_prices_csv_bad_rows_are_reported_and_exported_safely(analyst, norvale):
    response = analyst.post(reverse("finance:prices"), {"file": file_of("prices_bad_rows.csv")})
    assert response.status_code == 302
    upload = PriceUpload.objects.get()
    assert (upload.accepted, upload.rejected) == (1, 3)
    assert DailyPrice.objects.count() == 1
    assert sorted(p["row"] for p in upload.problems) == [3, 4, 5]
    export = analyst.get(reverse("finance:price_upload_rejected_csv", args=[upload.pk]))
    symbols = [row[1] for row in csv.reader(io.StringIO(export.content.decode("utf-8-sig")))][1:]
    assert "'=cmd|' /C calc'!A0" in symbols


# --- course material (tutor) ---------------------------------------------------------------------

MATERIAL_REFUSED = {
    "pdf_truncated.pdf": "looks truncated",
    "pdf_no_text.pdf": "has no text that can be extracted",
    "pdf_encrypted.pdf": "password-protected",
    "pdf_garbage_body.pdf": "could not be read as a PDF",
    "png_as.pdf": "is not a PDF file",
    "pdf_as.txt": "is a PDF file with a text file's name",
    "png_as.txt": "does not look like a text file",
    "png_as.md": "does not look like a text file",
    "zip_as.txt": "does not look like a text file",
    "zip_as.csv": "upload a plain text (.txt), Markdown (.md) or PDF (.pdf) file",
    "essay_nul_bytes.txt": "does not look like a text file",
    "empty.txt": "is empty",
    "whitespace.txt": "is empty",
}


@pytest.fixture
def teacher(client, make_user):
    user = make_user(Role.TEACHER)
    client.force_login(user)
    return user


@pytest.fixture
def course(teacher, make_user):
    course = Course.objects.create(title="Writing 101", teacher=teacher)
    course.students.add(make_user(Role.STUDENT))
    return course


@pytest.mark.parametrize("name", list(MATERIAL_REFUSED))
def test_course_material_refused_with_reason(client, course, name):
    before = counts(CourseMaterial, MaterialChunk)
    response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                           {"title": "", "file": file_of(name), "pasted_kind": "markdown"})
    assert response.status_code == 400
    assert MATERIAL_REFUSED[name] in page_text(response)
    assert counts(CourseMaterial, MaterialChunk) == before


@pytest.mark.parametrize("name", ["text_chinese.txt", "text_arabic.txt", "text_cyrillic.txt", "text_hindi.txt",
                                  "text_emoji_control.txt", "essay_utf16.txt", "essay_latin1.txt"])
def test_course_material_in_other_scripts_and_encodings_is_kept_whole(client, course, name):
    response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                           {"title": "", "file": file_of(name), "pasted_kind": "markdown"})
    assert response.status_code == 302
    material = CourseMaterial.objects.get()
    assert material.chunk_count == MaterialChunk.objects.filter(material=material).count() >= 1
    assert "\ufffd" not in material.text and "\x00" not in material.text
    if name.startswith("text_") and name != "text_emoji_control.txt":
        assert material.text == read(name).decode().strip()


def test_course_material_one_mb_single_line_is_cut_into_passages(client, course):
    response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                           {"title": "Long", "file": SimpleUploadedFile("long.txt", one_mb_line()),
                            "pasted_kind": "markdown"})
    assert response.status_code == 302
    material = CourseMaterial.objects.get()
    assert material.chunk_count > 100
    assert max(len(c.text.split()) for c in material.chunks.all()) <= 200


def test_course_material_html_is_escaped_on_its_page(client, course):
    response = client.post(reverse("education:tutor_material_list", args=[course.pk]),
                           {"title": HTML_PAYLOADS[1], "file": file_of("text_html_payloads.txt"),
                            "pasted_kind": "markdown"})
    assert response.status_code == 302
    content = client.get(response["Location"]).content.decode()
    for raw, escaped in zip(HTML_PAYLOADS, HTML_ESCAPED, strict=True):
        assert raw not in content
        assert escaped in content


# --- essays (text and .txt upload) ---------------------------------------------------------------

ESSAY_REFUSED = {  # as an uploaded .txt file
    "empty.txt": "The essay is empty",
    "whitespace.txt": "The essay is empty",
    "essay_latin1.txt": "is not UTF-8 text",
    "essay_nul_bytes.txt": "contains binary data",
    "png_as.txt": "contains binary data",
    "zip_as.txt": "contains binary data",
    "pdf_as.txt": "The file is a PDF with a .txt name",
    "csv_invalid_utf8.csv": "Upload a plain-text .txt file",
}


@pytest.fixture
def enrolled(client, make_user):
    from education.models import Assignment

    student, teacher = make_user(Role.STUDENT), make_user(Role.TEACHER)
    course = Course.objects.create(title="Writing 101", teacher=teacher)
    course.students.add(student)
    assignment = Assignment.objects.create(
        course=course, title="Phones", prompt="Should schools ban phones?", score_min=1, score_max=6,
        rubric=[{"name": "Ideas", "description": "A clear position.", "lines": [{"score": 6, "text": "Clear."}]}],
        traits=["Ideas"])
    client.force_login(student)
    return assignment


@pytest.mark.parametrize("name", list(ESSAY_REFUSED))
def test_essay_upload_refused_with_reason(client, enrolled, name):
    response = client.post(reverse("education:assignment", args=[enrolled.pk]), {"text": "", "upload": file_of(name)})
    assert response.status_code == 400
    assert ESSAY_REFUSED[name] in page_text(response)
    assert counts(Essay, EssayVersion) == {"Essay": 0, "EssayVersion": 0}


@pytest.mark.parametrize("text", ["", "   \n\t  ", "\u3000\u200b\ufeff\n"], ids=["empty", "spaces", "invisible"])
def test_essay_text_empty_refused(client, enrolled, text):
    response = client.post(reverse("education:assignment", args=[enrolled.pk]), {"text": text})
    assert response.status_code == 400
    assert "The essay is empty" in page_text(response)
    assert EssayVersion.objects.count() == 0


def test_essay_text_with_nul_refused(client, enrolled):
    response = client.post(reverse("education:assignment", args=[enrolled.pk]), {"text": "Phones\x00 distract."})
    assert response.status_code == 400
    assert "Null characters are not allowed" in page_text(response) or "binary data" in page_text(response)
    assert EssayVersion.objects.count() == 0


@pytest.mark.parametrize("name", ["text_chinese.txt", "text_arabic.txt", "text_cyrillic.txt", "text_hindi.txt",
                                  "text_emoji_control.txt", "essay_utf16.txt"])
def test_essay_in_other_scripts_is_stored_whole(client, enrolled, name):
    response = client.post(reverse("education:assignment", args=[enrolled.pk]), {"text": "", "upload": file_of(name)})
    assert response.status_code == 302
    stored = EssayVersion.objects.get().text
    assert "\ufffd" not in stored
    if name.startswith("text_") and name != "text_emoji_control.txt":
        assert stored == unicodedata.normalize("NFKC", read(name).decode()).strip()
    else:
        assert "distract" in stored or "📱" in stored


def test_essay_of_one_mb_single_line_refused(client, enrolled):
    response = client.post(reverse("education:assignment", args=[enrolled.pk]),
                           {"text": "", "upload": SimpleUploadedFile("big.txt", one_mb_line())})
    assert response.status_code == 400
    assert "The file is over 1 MB" in page_text(response) or "words; the limit is" in page_text(response)
    assert EssayVersion.objects.count() == 0


# --- datasets for fine-tuning (mlcore) -----------------------------------------------------------

DATASET_REFUSED = {
    "png_as.csv": "does not look like a text file",
    "zip_as.jsonl": "does not look like a text file",
    "csv_nul_bytes.csv": "does not look like a text file",
    "empty.txt": "is empty",
    "whitespace.txt": "is empty",
    "dataset_missing_column.csv": "text",
    "pdf_as.txt": "is a PDF document, not a text file",
    "dataset_not_objects.jsonl": "no usable rows",
    "one_mb_line": "first row cannot be read as a header row",
}


@pytest.fixture
def operator(client, make_user, mlcore_home):
    client.force_login(make_user(Role.OPERATOR))
    return client


@pytest.mark.parametrize("name", list(DATASET_REFUSED))
def test_dataset_upload_refused_with_reason(operator, name):
    upload = SimpleUploadedFile("big.csv", one_mb_line()) if name == "one_mb_line" else file_of(name)
    response = operator.post(reverse("mlcore:datasets"), {"kind": "classification", "file": upload})
    assert response.status_code == 400
    assert DATASET_REFUSED[name] in page_text(response)
    assert Dataset.objects.count() == 0


def test_dataset_truncated_jsonl_reports_the_broken_line(operator):
    response = operator.post(reverse("mlcore:datasets"),
                             {"kind": "classification", "file": file_of("dataset_truncated.jsonl")})
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    assert (dataset.rows_kept, dataset.rows_rejected) == (3, 1)
    assert [r["line"] for r in dataset.rejected] == [4]
    assert "is not valid JSON" in dataset.rejected[0]["reason"]
    assert "is not valid JSON" in page_text(operator.get(response["Location"]))


def test_dataset_html_and_formula_text_is_escaped_and_exported_safely(operator):
    data = ("text,label\n<script>alert(1)</script> profit rose,positive\nloss widened,negative\n"
            "=cmd|' /C calc'!A0,\n+SUM(1+1) and more,\n<img src=x onerror=alert(1)>,neutral\n")
    response = operator.post(reverse("mlcore:datasets"), {"kind": "classification",
                                                          "file": SimpleUploadedFile("d.csv", data.encode())})
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    assert dataset.rows_rejected >= 1
    content = operator.get(response["Location"]).content.decode()
    assert HTML_PAYLOADS[0] not in content and HTML_PAYLOADS[1] not in content
    export = operator.get(reverse("mlcore:dataset_rejected_csv", args=[dataset.pk])).content.decode("utf-8-sig")
    texts = [row[2] for row in csv.reader(io.StringIO(export))][1:]
    assert texts and not any(text[:1] in "=+-@" for text in texts)


# --- style corpus (entertainment: a writer's text for a LoRA fine-tune) ----------------------------

STYLE_REFUSED = {
    "png_as.txt": "does not look like a text file",
    "zip_as.txt": "does not look like a text file",
    "essay_nul_bytes.txt": "does not look like a text file",
    "empty.txt": "The submitted file is empty",
    "whitespace.txt": "is empty",
    "pdf_as.txt": "is a PDF document, not a text file",
}


@pytest.mark.parametrize("name", list(STYLE_REFUSED))
def test_style_corpus_refused_with_reason(client, make_user, mlcore_home, name):
    from entertainment.models import Project
    from mlcore.models import TrainingJob

    writer = make_user(Role.WRITER)
    project = Project.objects.create(owner=writer, title="Gull Rock")
    client.force_login(writer)
    response = client.post(reverse("entertainment:style_upload", args=[project.pk]),
                           {"corpus": file_of(name), "epochs": 1})
    assert response.status_code == 400
    assert STYLE_REFUSED[name] in page_text(response)
    assert Dataset.objects.count() == TrainingJob.objects.count() == 0
