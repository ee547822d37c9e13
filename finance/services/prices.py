"""Daily closing prices from a CSV file (symbol,date,close): checked row by row, stored once per company and day."""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.dateparse import parse_date

from finance.models import Company, DailyPrice, PriceUpload
from finance.services.ingest import finance_data_changed
from mlcore.data import DataError, decode_text

PRICES_MAX_BYTES = 5 * 1024 * 1024
PRICE_COLUMNS = ("symbol", "date", "close")
PRICES_EXAMPLE_HEADER = "symbol,date,close"
CLOSE_MAX = Decimal("9999999999.9999")  # DailyPrice.close holds 14 digits, 4 after the point
_CENTS = Decimal("0.0001")
_DELIMITERS = ",;\t|"


@dataclass
class PriceRows:
    rows: list[dict] = field(default_factory=list)  # {row, company, date, close}
    rejected: list[dict] = field(default_factory=list)  # {row, symbol, date, close, reason}


def prices_read(*, data: bytes, filename: str) -> PriceRows:
    """Check every row of a prices CSV; raises DataError for a file that cannot be used at all.

    Rows are numbered as a spreadsheet shows them (the header is row 1).
    """
    if len(data) > PRICES_MAX_BYTES:
        raise DataError(f"{filename} is {filesizeformat(len(data))}; the limit is {filesizeformat(PRICES_MAX_BYTES)}. "
                        "Split it into smaller files.")
    text = decode_text(data, filename=filename)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{filename} is empty.")
    delimiter = _delimiter(lines[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [(reader.line_num, fields) for fields in reader if any(v.strip() for v in fields)]
    except csv.Error as error:
        raise DataError(f"{filename}, line {reader.line_num}: the file cannot be read as CSV ({error}).") from error
    _, header = records[0]
    names = [name.strip().casefold() for name in header]
    missing = [column for column in PRICE_COLUMNS if column not in names]
    if missing:
        raise DataError(f"{filename} has no {', '.join(f'“{m}”' for m in missing)} column"
                        f"{'s' if len(missing) > 1 else ''}. The header must name symbol, date and close "
                        f"(e.g. {PRICES_EXAMPLE_HEADER}); its columns are: {', '.join(h.strip() for h in header)}.")
    if len(records) == 1:
        raise DataError(f"{filename} has a header but no rows under it.")
    position = {column: names.index(column) for column in PRICE_COLUMNS}
    companies = {c.symbol: c for c in Company.objects.all().only("pk", "symbol")}
    latest = timezone.localdate() + timedelta(days=1)
    out, seen = PriceRows(), {}
    for number, fields in records[1:]:
        values = {column: (fields[i].strip() if i < len(fields) else "") for column, i in position.items()}
        symbol = values["symbol"].lstrip("$").upper()
        try:
            company = companies.get(symbol)
            if not symbol:
                raise DataError("the symbol is empty")
            if company is None:
                raise DataError(f"unknown symbol “{values['symbol'][:20]}”; add the company first")
            day = _day(values["date"], latest=latest)
            close = _close(values["close"])
            if (company.pk, day) in seen:
                raise DataError(f"same symbol and date as row {seen[(company.pk, day)]}")
        except DataError as reason:
            out.rejected.append({"row": number, **{k: v[:40] for k, v in values.items()}, "reason": str(reason)})
            continue
        seen[(company.pk, day)] = number
        out.rows.append({"row": number, "company": company, "date": day, "close": close})
    return out


def prices_upload(*, user, data: bytes, filename: str) -> PriceUpload:
    """Store the closes of a prices CSV, one per company and day: new days are added, another close for a day
    already stored replaces it, the same close changes nothing. Records the load and each rejected row."""
    table = prices_read(data=data, filename=filename)
    with transaction.atomic():
        wanted = {(r["company"].pk, r["date"]) for r in table.rows}
        stored = {}
        if wanted:
            company_ids = {pk for pk, _ in wanted}
            days = [d for _, d in wanted]
            for price in DailyPrice.objects.filter(company_id__in=company_ids, date__gte=min(days),
                                                   date__lte=max(days)):
                if (price.company_id, price.date) in wanted:
                    stored[(price.company_id, price.date)] = price
        new, changed, unchanged = [], [], 0
        for row in table.rows:
            price = stored.get((row["company"].pk, row["date"]))
            if price is None:
                new.append(DailyPrice(company=row["company"], date=row["date"], close=row["close"]))
            elif price.close != row["close"]:
                price.close = row["close"]
                changed.append(price)
            else:
                unchanged += 1
        DailyPrice.objects.bulk_create(new, batch_size=1000)
        DailyPrice.objects.bulk_update(changed, ["close"], batch_size=1000)
        finance_data_changed()
        return PriceUpload.objects.create(
            user=user if user is not None and user.is_authenticated else None, filename=filename[:255],
            rows=len(table.rows) + len(table.rejected), accepted=len(new), updated=len(changed),
            unchanged=unchanged, rejected=len(table.rejected), problems=table.rejected,
        )


def _delimiter(header_line: str) -> str:
    for delimiter in _DELIMITERS:
        try:
            names = [name.strip().casefold() for name in next(csv.reader([header_line], delimiter=delimiter), [])]
        except csv.Error:  # e.g. a header longer than the csv module's field limit; reading the file reports it
            continue
        if all(column in names for column in PRICE_COLUMNS):
            return delimiter
    return ","


def _day(value: str, *, latest: date) -> date:
    try:
        day = parse_date(value) if value else None
    except ValueError:  # well formed but impossible, e.g. 2026-02-30
        day = None
    if day is None:
        raise DataError(f"the date “{value[:20]}” is not a date (use YYYY-MM-DD, e.g. 2026-03-02)"
                        if value else "the date is empty")
    if day > latest:
        raise DataError(f"the date {day.isoformat()} is in the future")
    return day


def _close(value: str) -> Decimal:
    if not value:
        raise DataError("the close is empty")
    try:
        close = Decimal(value.replace(",", "") if value.count(".") == 1 else value)
    except InvalidOperation:
        close = None
    if close is None or not close.is_finite():
        raise DataError(f"the close “{value[:20]}” is not a number")
    if close <= 0:
        raise DataError(f"the close {value[:20]} is not above 0")
    if close > CLOSE_MAX:
        raise DataError(f"the close {value[:20]} is too large")
    return close.quantize(_CENTS, rounding=ROUND_HALF_UP)
