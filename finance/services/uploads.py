"""CSV uploads (preview, column mapping, pending files), API pushes, and the record of each load."""

import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from finance.models import IngestRun, Source
from finance.services.ingest import IngestResult, articles_ingest
from mlcore.data import DataError, decode_text, normalize_text

CSV_MAX_BYTES = 20 * 1024 * 1024
CSV_FIELDS = ("title", "body", "url", "published_at")
CSV_EXAMPLE_HEADER = "title,body,url,published_at"
_CSV_DELIMITERS = ",;\t|"
_CSV_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Header names that say which column holds which field, most telling first. Matched as whole names, then as
# words of a name ("news_headline"); the body's names are the vaguest, so it is matched last.
_CSV_COLUMN_NAMES = {
    "title": ("title", "headline", "headlines", "heading", "subject"),
    "url": ("url", "link", "href", "permalink", "uri"),
    "published_at": ("published_at", "published", "publishedat", "pubdate", "pub_date", "published_on",
                     "publication_date", "date", "datetime", "time", "timestamp"),
    "body": ("body", "summary", "text", "content", "description", "snippet", "abstract", "lead"),
}
# A first row holding a web address, a date or a number is data, not a header.
_LOOKS_LIKE_VALUE = re.compile(r"https?://\S+|\d{4}-\d{2}-\d{2}.*|\d{1,2}[./]\d{1,2}[./]\d{2,4}.*|[+-]?[\d.,]+")
_SAME_AS_ROW = re.compile(r"same article as row (\d+)")
PENDING_UPLOAD_MAX_AGE = timedelta(days=1)
_PENDING_TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass
class CsvPreview:
    filename: str
    delimiter: str
    header: list[str]  # unique names; a blank or repeated one is named after its position
    rows: list[list[str]]  # the first rows, each cut or padded to the header's length
    total_rows: int
    ragged_rows: int  # rows with another number of fields than the header, or unreadable: they will be rejected
    guess: dict[str, str | None]  # field -> the column that seems to hold it
    row_numbers: list[int] = field(default_factory=list)  # of `rows`, as a spreadsheet shows them (header = 1)
    row_notes: list[str] = field(default_factory=list)  # of `rows`: why one will be rejected, else ""

    @property
    def delimiter_name(self) -> str:
        return _CSV_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))

    @property
    def numbered_rows(self) -> list[tuple[int, list[str], str]]:
        return list(zip(self.row_numbers, self.rows, self.row_notes, strict=True))


@dataclass
class CsvRows:
    rows: list[dict]  # {row, title, body, url, published_at}; row is the row a spreadsheet shows (header = 1)
    problems: list[dict] = field(default_factory=list)  # {row, title, reason}: rows that could not be read


def csv_preview(*, data: bytes, filename: str, limit: int = 10) -> CsvPreview:
    """Read a news CSV far enough to show it: delimiter, header, first rows and a guess of which column is which.

    Raises DataError for a file that is too large, empty, binary, has no header row or no row under it.
    """
    delimiter, header, records = _csv_open(data, filename=filename)
    preview = CsvPreview(filename=filename, delimiter=delimiter, header=header, rows=[], total_rows=0,
                         ragged_rows=0, guess=csv_guess_columns(header))
    for number, fields, reason in records:
        preview.total_rows += 1
        reason = reason or _csv_ragged(fields, header)
        preview.ragged_rows += bool(reason)
        if len(preview.rows) < limit:
            preview.rows.append(((fields or []) + [""] * len(header))[: len(header)])
            preview.row_numbers.append(number)
            preview.row_notes.append(reason)
    if not preview.total_rows:
        raise DataError(f"{filename} has a header but no rows under it.")
    return preview


def csv_guess_columns(header: list[str]) -> dict[str, str | None]:
    """Which column seems to hold each field (title, body, url, published_at), from the header's names."""
    keys = [re.sub(r"[\s\-]+", "_", name.strip().casefold()) for name in header]
    found: dict[str, int] = {}
    for words_too in (False, True):
        for wanted_field, names in _CSV_COLUMN_NAMES.items():
            if wanted_field in found:
                continue
            for name in names:
                position = next((i for i, key in enumerate(keys) if i not in found.values()
                                 and (key == name or (words_too and name in key.split("_")))), None)
                if position is not None:
                    found[wanted_field] = position
                    break
    return {name: header[found[name]] if name in found else None for name in CSV_FIELDS}


def csv_rows(*, data: bytes, filename: str, mapping: dict[str, str]) -> CsvRows:
    """The articles of a news CSV as rows for `articles_ingest`, by `mapping` (field -> column name).

    Rows that cannot be read as CSV, or have another number of fields than the header, are not guessed at:
    they come back in `problems` with their row and the reason. Without a published_at column every
    article is dated at the time of the import.
    """
    _, header, records = _csv_open(data, filename=filename)
    positions = {}
    for name in CSV_FIELDS:
        column = mapping.get(name)
        if column:
            if column not in header:
                raise DataError(f"{filename} has no column “{column}”. Its columns are: {', '.join(header)}.")
            positions[name] = header.index(column)
    if "title" not in positions:
        raise DataError("Choose the column that holds the title.")
    imported_at = timezone.now()
    table = CsvRows(rows=[])
    for number, fields, reason in records:
        title = fields[positions["title"]] if fields and positions["title"] < len(fields) else ""
        reason = reason or _csv_ragged(fields, header)
        if reason:
            table.problems.append({"row": number, "title": normalize_text(title)[:200], "reason": reason})
            continue
        row = {name: fields[position] for name, position in positions.items()}
        row.setdefault("published_at", imported_at)
        table.rows.append({"row": number, **row})
    if not table.rows and not table.problems:
        raise DataError(f"{filename} has a header but no rows under it.")
    return table


def ingest_run_record(*, source: Source, user, via: str, filename: str, result: IngestResult,
                      structural_problems: list[dict] | None = None) -> IngestRun:
    """Record one load: its counts, and each duplicate and rejected row with its row number and reason.

    `structural_problems` are rows that never reached `articles_ingest` (unreadable CSV rows); they count
    as rejected.
    """
    structural_problems = structural_problems or []
    problems = [{**p, "kind": "rejected"} for p in [*structural_problems, *result.rejected]]
    problems += [{**p, "kind": "duplicate"} for p in result.duplicates]
    problems.sort(key=lambda p: p["row"])
    rejected = len(result.rejected) + len(structural_problems)
    return IngestRun.objects.create(
        user=user if user is not None and user.is_authenticated else None, source=source, via=via,
        filename=filename[:255], rows=len(result.accepted) + len(result.duplicates) + rejected,
        accepted=len(result.accepted), duplicates=len(result.duplicates), rejected=rejected,
        clustered=result.clustered, problems=problems,
    )


def articles_upload(*, source_name: str, user, data: bytes, filename: str, mapping: dict[str, str],
                    default_tz=UTC) -> IngestRun:
    """Load a news CSV into a source (made, of kind CSV, when the name is new) and record the run.

    `mapping` names the column of each field; naive published times are taken in `default_tz`.
    """
    table = csv_rows(data=data, filename=filename, mapping=mapping)
    numbers = [row["row"] for row in table.rows]
    with transaction.atomic():
        source = source_for(name=source_name, kind=Source.Kind.CSV)
        result = articles_ingest(source=source, rows=table.rows, default_tz=default_tz)
        result.rejected = _renumbered(result.rejected, numbers)
        result.duplicates = _renumbered(result.duplicates, numbers)
        return ingest_run_record(source=source, user=user, via=IngestRun.Via.CSV, filename=filename, result=result,
                                 structural_problems=table.problems)


def articles_push(*, source_name: str, user, articles: list[dict], default_tz=UTC) -> IngestRun:
    """Load articles sent to the JSON API into a source (made, of kind API, when new) and record the run.

    Row numbers in the run's problems are places in `articles`, from 1.
    """
    with transaction.atomic():
        source = source_for(name=source_name, kind=Source.Kind.API)
        result = articles_ingest(source=source, rows=articles, default_tz=default_tz)
        return ingest_run_record(source=source, user=user, via=IngestRun.Via.API, filename="", result=result)


def pending_upload_save(*, data: bytes, user) -> str:
    """Keep an uploaded file of `user`'s until its columns are confirmed; returns the token that names it.

    Kept files older than PENDING_UPLOAD_MAX_AGE are removed on the way.
    """
    folder = _pending_folder()
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = (timezone.now() - PENDING_UPLOAD_MAX_AGE).timestamp()
    for old in folder.glob("*.csv"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:
            pass
    token = uuid.uuid4().hex
    (folder / f"{user.pk}-{token}.csv").write_bytes(data)
    return token


def pending_upload_read(*, token: str, user) -> bytes | None:
    """The bytes of `user`'s kept upload `token`; None when it is unknown, someone else's, used or too old."""
    path = _pending_path(token=token, user=user)
    try:
        if path is None or path.stat().st_mtime < (timezone.now() - PENDING_UPLOAD_MAX_AGE).timestamp():
            return None
        return path.read_bytes()
    except FileNotFoundError:
        return None


def pending_upload_discard(*, token: str, user) -> None:
    """Remove `user`'s kept upload `token`, if it is there."""
    path = _pending_path(token=token, user=user)
    if path is not None:
        path.unlink(missing_ok=True)


def _pending_folder() -> Path:
    return Path(settings.VAR_DIR) / "uploads" / "finance"


def _pending_path(*, token: str, user) -> Path | None:
    # The owner is part of the file name, so a token alone never opens another user's file.
    if not isinstance(token, str) or not _PENDING_TOKEN.fullmatch(token) or not user.is_authenticated:
        return None
    return _pending_folder() / f"{user.pk}-{token}.csv"


def source_for(*, name: str, kind: str) -> Source:
    name = " ".join(name.split())[:200]
    if not name:
        raise DataError("Name the source the articles come from.")
    return Source.objects.filter(name__iexact=name).first() or Source.objects.create(name=name, kind=kind)


def _renumbered(problems: list[dict], numbers: list[int]) -> list[dict]:
    """articles_ingest numbers rows by their place in the list it got; give each its row in the file instead."""
    def in_file(match):
        return f"same article as row {numbers[int(match.group(1)) - 1]}"

    return [{**p, "row": numbers[p["row"] - 1], "reason": _SAME_AS_ROW.sub(in_file, p["reason"])} for p in problems]


def _csv_open(data: bytes, *, filename: str):
    """Check the size, decode, choose the delimiter and read the header row.

    Returns (delimiter, header, records), `records` yielding (row, fields, reason) for each non-blank
    row under the header; fields is None (and reason says why) for a row that is not valid CSV.
    """
    if len(data) > CSV_MAX_BYTES:
        raise DataError(f"{filename} is {filesizeformat(len(data))}; the limit is {filesizeformat(CSV_MAX_BYTES)}. "
                        "Split it into smaller files.")
    text = decode_text(data, filename=filename)
    delimiter = _csv_delimiter(text)
    records = (record for record in _csv_records(text, delimiter=delimiter, filename=filename)
               if record[1] is None or any(value.strip() for value in record[1]))
    first = next(records, None)
    if first is None:
        raise DataError(f"{filename} is empty.")
    number, fields, reason = first
    if fields is None:
        raise DataError(f"{filename}, row {number}: the header row {reason}.")
    names = [value.strip() for value in fields]
    if not any(csv_guess_columns(names).values()):
        value = next((name for name in names if len(name) > 60 or _LOOKS_LIKE_VALUE.fullmatch(name)), None)
        if value is not None:
            raise DataError(f"{filename} does not start with a header row: its first row holds values such as "
                            f"“{value[:40]}”. Add a first row that names the columns, e.g. {CSV_EXAMPLE_HEADER}")
    header = []
    for position, name in enumerate(names, start=1):
        header.append(name if name and name not in header else f"{name or 'column'} ({position})")
    return delimiter, header, records


def _csv_ragged(fields: list[str], header: list[str]) -> str:
    """Why a row does not fit under the header, or ""."""
    if len(fields) == len(header):
        return ""
    hint = "a value that holds the delimiter needs quotes" if len(fields) > len(header) else "a delimiter is missing"
    return f"has {len(fields)} fields, the header has {len(header)} ({hint})"


def _csv_delimiter(text: str) -> str:
    """The delimiter whose header names a known column, else the one the sniffer finds, else a comma."""
    sample = text[:16384]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS).delimiter
    except csv.Error:
        sniffed = ","
    candidates = [sniffed] + [d for d in _CSV_DELIMITERS if d != sniffed]
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    for delimiter in candidates:
        header = next(csv.reader([first_line], delimiter=delimiter), [])
        if len(header) > 1 and any(csv_guess_columns(header).values()):
            return delimiter
    return sniffed


def _csv_records(text: str, *, delimiter: str, filename: str):
    """(row, fields, reason) for each CSV record; rows are numbered as a spreadsheet shows them, from 1."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = last_line = 0
    while True:
        number += 1
        first_line = last_line + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if reader.line_num > first_line:
                raise DataError(
                    f"{filename}, row {number}: a quoted value that starts here is not closed ({error}), so the rows "
                    "after it cannot be read. Check the quotes in that row."
                ) from error
            last_line = reader.line_num
            yield number, None, f"could not be read as CSV ({error}); check its quotes"
            continue
        last_line = reader.line_num
        yield number, fields, ""
