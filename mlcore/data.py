"""The data pipeline of the shared model layer: read uploads, clean, deduplicate globally, split.

The lesson followed is SlimPajama's: normalise every text, drop exact duplicates by hash, then drop
near-duplicates found with MinHash LSH across the whole set before anything is split or trained on.
Readers never drop a row silently: a row they cannot use goes to `rejected` with its line and a reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datasketch import MinHash, MinHashLSH

PHRASEBANK_LABELS = ("positive", "neutral", "negative")
SPLITS = ("train", "validation", "test")

_CSV_DELIMITERS = ",;\t|"
_BINARY_SAMPLE_CHARS = 8192
_BINARY_MAX_SHARE = 0.30
_UNPRINTABLE = frozenset({"Cc", "Cs", "Co", "Cn"})
_REJECTED_TEXT_CHARS = 200
_MINHASH_SEED = 1
# The LSH only proposes candidates; each is then checked with the exact Jaccard similarity. Weighting
# false negatives heavily makes a pair at the threshold a candidate ~93% of the time (~99% at +0.05)
# instead of ~46% with equal weights (at 0.85 with 128 permutations); the exact check removes the
# extra false positives.
_LSH_WEIGHTS = (0.05, 0.95)

# Control characters that Python counts as whitespace (\v, \f, \x1c-\x1f) become spaces; the rest,
# and the invisible zero-width characters, are removed.
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b\u2060\ufeff]")
_PHYSICAL_LINES = re.compile(r"\r\n|\r|\n")
_LINE_BREAKS = re.compile(r"\r\n|[\r\x85\u2028\u2029]")
_SPACES = re.compile(r"[^\S\n]+")
_SPACES_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


class DataError(ValueError):
    """An input that cannot be used at all, explained for the person who uploaded it."""


@dataclass(frozen=True, slots=True)
class RawRow:
    line: int
    text: str
    label: str | None = None
    target: float | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str
    text: str


@dataclass(slots=True)
class ReadResult:
    rows: list[RawRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CleanRow:
    line: int
    text: str
    label: str | None
    target: float | None
    hash: str
    cluster: int


@dataclass(slots=True)
class CleanResult:
    rows: list[CleanRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    exact_duplicates: int = 0
    near_duplicates: int = 0
    clusters: dict[int, int] = field(default_factory=dict)


# Readers


def read_csv(
    data: bytes,
    *,
    text_column: str = "text",
    label_column: str | None = None,
    target_column: str | None = None,
    filename: str = "upload.csv",
) -> ReadResult:
    """Read a CSV upload into rows, with its delimiter and encoding detected."""
    text = _decode(data, filename=filename)
    wanted = [name for name in (text_column, label_column, target_column) if name]
    delimiter, header = _csv_layout(text, wanted=wanted)
    positions = {name: _column_position(header, name) for name in wanted}
    missing = [name for name, position in positions.items() if position is None]
    if missing:
        found = ", ".join(f'"{name}"' for name in header)
        columns = (f"The columns in its header are: {found}." if header else
                   "Its first row cannot be read as a header row (an unclosed quote, or a value over "
                   f"{csv.field_size_limit():,} characters).")
        raise DataError(f'{filename} has no column "{missing[0]}". {columns}')

    result = ReadResult()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    last_line = 0
    header_seen = False
    physical: list[str] = []  # the file's lines, split only if a row needs quoting back
    while True:
        first_line = last_line + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if not header_seen:
                raise DataError(f"{filename}, line {first_line}: the header is not valid CSV ({error}).") from error
            if reader.line_num > first_line:
                raise DataError(
                    f"{filename}, line {first_line}: a quoted value that starts here is not closed properly "
                    f"({error}), so the lines after it cannot be read. Check the quotes on that line."
                ) from error
            last_line = reader.line_num
            physical = physical or _physical_lines(text)
            reason = f"could not be read as CSV ({error}); check its quotes"
            result.rejected.append(_rejected(first_line, reason, physical[first_line - 1]))
            continue
        last_line = reader.line_num
        if not any(value.strip() for value in fields):
            continue
        if not header_seen:
            header_seen = True
            continue
        if len(fields) != len(header):
            reason = f"has {len(fields)} fields, the header has {len(header)}"
            result.rejected.append(_rejected(first_line, reason, delimiter.join(fields)))
            continue
        values = {name: fields[position] for name, position in positions.items()}
        _accept(result, first_line, values, text_key=text_column, label_key=label_column, target_key=target_column)

    if not result.rows and not result.rejected:
        raise DataError(f"{filename} has a header line but no rows under it.")
    return result


def read_jsonl(
    data: bytes,
    *,
    text_field: str = "text",
    label_field: str | None = None,
    target_field: str | None = None,
    filename: str = "upload.jsonl",
) -> ReadResult:
    """Read a JSON Lines upload (one JSON object per line) into rows."""
    text = _decode(data, filename=filename)
    wanted = [name for name in (text_field, label_field, target_field) if name]
    result = ReadResult()
    fields_seen: dict[str, None] = {}
    for line_number, line in enumerate(_physical_lines(text), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            reason = f"is not valid JSON ({error.msg} at column {error.colno})"
            result.rejected.append(_rejected(line_number, reason, line))
            continue
        if not isinstance(record, dict):
            result.rejected.append(_rejected(line_number, "is not a JSON object ({...})", line))
            continue
        fields_seen.update(dict.fromkeys(record))
        values = {name: record.get(name) for name in wanted}
        _accept(result, line_number, values, text_key=text_field, label_key=label_field, target_key=target_field)

    missing = [name for name in wanted if name not in fields_seen]
    if fields_seen and missing and not result.rows:
        found = ", ".join(f'"{name}"' for name in fields_seen)
        raise DataError(f'{filename} has no "{missing[0]}" field on any line. The fields found are: {found}.')
    return result


def read_text(data: bytes, *, min_chars: int = 1, filename: str = "upload.txt") -> ReadResult:
    """Read a plain-text corpus in which documents are separated by blank lines."""
    text = _decode(data, filename=filename)
    result = ReadResult()
    document: list[str] = []
    start = 0
    for line_number, line in enumerate([*_physical_lines(text), ""], start=1):
        if line.strip():
            if not document:
                start = line_number
            document.append(line)
            continue
        if document:
            body = "\n".join(document).strip()
            if len(body) >= min_chars:
                result.rows.append(RawRow(line=start, text=body))
            else:
                reason = f"is too short ({len(body)} characters; at least {min_chars} are needed)"
                result.rejected.append(_rejected(start, reason, body))
            document = []
    return result


def read_phrasebank(data: bytes, *, filename: str = "phrasebank.txt") -> ReadResult:
    """Read the Financial PhraseBank format: one `sentence@label` per line."""
    # The published files are latin-1; _decode tries UTF-8 first, so re-encoded copies read right too.
    text = _decode(data, filename=filename)
    allowed = ", ".join(PHRASEBANK_LABELS)
    result = ReadResult()
    for line_number, line in enumerate(_physical_lines(text), start=1):
        line = line.strip()
        if not line:
            continue
        sentence, at, label = line.rpartition("@")
        label = label.strip().lower()
        if not at:
            result.rejected.append(_rejected(line_number, 'has no "@" before its label', line))
        elif label not in PHRASEBANK_LABELS:
            reason = f'has the unknown label "{label}" (expected one of {allowed})'
            result.rejected.append(_rejected(line_number, reason, line))
        elif not sentence.strip():
            result.rejected.append(_rejected(line_number, "has an empty sentence", line))
        else:
            result.rows.append(RawRow(line=line_number, text=sentence.strip(), label=label))
    return result


_READERS = {"csv": read_csv, "jsonl": read_jsonl, "text": read_text, "phrasebank": read_phrasebank}
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "text"}


def format_for(filename: str, fmt: str | None = None) -> str:
    """The reader name for a file: `fmt` when given, else its extension; DataError when neither says."""
    fmt = fmt or _EXTENSIONS.get(Path(filename).suffix.lower())
    if fmt not in _READERS:
        known = ", ".join(_EXTENSIONS)
        raise DataError(
            f'{Path(filename).name}: cannot tell how to read a "{Path(filename).suffix or fmt}" file. '
            f"Use a file ending in {known}, or name the format ({', '.join(_READERS)})."
        )
    return fmt


def read_upload(
    data: bytes, *, filename: str, fmt: str | None = None, text: str = "text", label: str | None = None,
    target: str | None = None,
) -> ReadResult:
    """Read uploaded bytes with the reader its name (or `fmt`) calls for; column names apply to CSV and JSONL."""
    fmt = format_for(filename, fmt)
    if fmt == "csv":
        return read_csv(data, text_column=text, label_column=label, target_column=target, filename=filename)
    if fmt == "jsonl":
        return read_jsonl(data, text_field=text, label_field=label, target_field=target, filename=filename)
    return _READERS[fmt](data, filename=filename)


def read_path(path: str | Path, *, fmt: str | None = None, **kwargs) -> ReadResult:
    """Read a file from disk with the reader its extension (or `fmt`) names."""
    path = Path(path)
    fmt = format_for(path.name, fmt)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as error:
        raise DataError(f"{path} is not a file that can be read.") from error
    kwargs.setdefault("filename", path.name)
    return _READERS[fmt](data, **kwargs)


def decode_text(data: bytes, *, filename: str) -> str:
    """Decode an uploaded text file as the readers do (UTF-8 with or without BOM, UTF-16, else cp1252).

    Raises DataError for empty and binary files, with a message for the person who uploaded it.
    """
    return _decode(data, filename=filename)


# Cleaning and deduplication


def normalize_text(text: str) -> str:
    """Return `text` in the canonical form used for training and duplicate detection."""
    text = unicodedata.normalize("NFKC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACES_AROUND_NEWLINE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def clean_and_dedup(
    rows: list[RawRow],
    *,
    min_chars: int = 3,
    near_dup_threshold: float = 0.85,
    num_perm: int = 128,
    shingle: int = 5,
) -> CleanResult:
    """Normalise rows, then drop exact and near-duplicates across the whole set, keeping first occurrences."""
    result = CleanResult()
    candidates: list[tuple[RawRow, str, str]] = []
    seen_hashes: set[str] = set()
    for row in rows:
        text = normalize_text(row.text)
        if not text:
            result.rejected.append(_rejected(row.line, "is empty after cleaning", row.text))
            continue
        if len(text) < min_chars:
            reason = f"is too short after cleaning ({len(text)} characters; at least {min_chars} are needed)"
            result.rejected.append(_rejected(row.line, reason, text))
            continue
        text_hash = hashlib.sha1(text.lower().encode("utf-8")).hexdigest()
        if text_hash in seen_hashes:
            result.exact_duplicates += 1
            continue
        seen_hashes.add(text_hash)
        candidates.append((row, text, text_hash))

    shingle_sets = [_shingle_hashes(text.lower(), size=shingle) for _, text, _ in candidates]
    leaders = _cluster_leaders(shingle_sets, threshold=near_dup_threshold, num_perm=num_perm)
    kept_index: dict[int, int] = {}
    for position, ((row, text, text_hash), leader) in enumerate(zip(candidates, leaders, strict=True)):
        if leader != position:
            result.near_duplicates += 1
            result.clusters[kept_index[leader]] += 1
            continue
        index = len(result.rows)
        kept_index[position] = index
        result.clusters[index] = 1
        result.rows.append(
            CleanRow(line=row.line, text=text, label=row.label, target=row.target, hash=text_hash, cluster=index)
        )
    return result


def near_duplicate_clusters(
    texts: list[str], *, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5
) -> list[int]:
    """Group near-duplicate texts without dropping any: each gets the index of the first text of its cluster."""
    shingle_sets = [_shingle_hashes(normalize_text(text).lower(), size=shingle) for text in texts]
    return _cluster_leaders(shingle_sets, threshold=threshold, num_perm=num_perm)


# Splits


def split_for(text_hash: str, *, validation: float = 0.1, test: float = 0.1) -> str:
    """Return the split ("train", "validation" or "test") a text always lands in, decided by its hash."""
    _check_shares(validation=validation, test=test)
    position = int(text_hash[:8], 16) / 16**8
    # Test takes the bottom of the range, so changing the validation share never moves a test text.
    if position < test:
        return "test"
    if position < test + validation:
        return "validation"
    return "train"


def assign_splits(rows: list[CleanRow], *, validation: float = 0.1, test: float = 0.1) -> dict[str, list[CleanRow]]:
    """Divide cleaned rows into train, validation and test by their hashes, keeping row order in each."""
    _check_shares(validation=validation, test=test)
    splits: dict[str, list[CleanRow]] = {name: [] for name in SPLITS}
    for row in rows:
        splits[split_for(row.hash, validation=validation, test=test)].append(row)
    return splits


# Helpers


def _rejected(line: int, reason: str, text: str) -> Rejected:
    return Rejected(line=line, reason=reason, text=text[:_REJECTED_TEXT_CHARS])


def _physical_lines(text: str) -> list[str]:
    # Not splitlines(): it also splits at U+2028, NEL and friends, which may sit inside a line (and a
    # JSON string), and would make line numbers disagree with the user's editor and the csv module.
    return _PHYSICAL_LINES.split(text)


def _decode(data: bytes, *, filename: str) -> str:
    """Decode an upload, refusing empty and binary files."""
    if not data.strip() or data.strip() == b"\xef\xbb\xbf":
        raise DataError(f"{filename} is empty.")
    not_text = (
        f"{filename} does not look like a text file (it contains binary data). "
        "Upload a CSV, JSON Lines or plain text file; save a spreadsheet as CSV first."
    )
    if data.lstrip()[:5] == b"%PDF-":  # a PDF written without binary bytes would otherwise read as text
        raise DataError(f"{filename} is a PDF document, not a text file. Save its text as plain text or CSV and "
                        "upload that.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise DataError(not_text) from error
    elif b"\x00" in data:
        raise DataError(not_text)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    sample = text[:_BINARY_SAMPLE_CHARS]
    unprintable = sum(1 for char in sample if char not in "\t\n\r" and unicodedata.category(char) in _UNPRINTABLE)
    if unprintable > _BINARY_MAX_SHARE * len(sample):
        raise DataError(not_text)
    if not text.strip():
        raise DataError(f"{filename} is empty.")
    return text


def _csv_layout(text: str, *, wanted: list[str]) -> tuple[str, list[str]]:
    """Pick the delimiter (sniffed, but one whose header holds the wanted columns wins) and the header."""
    sample = text[:16384]
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS).delimiter
    except csv.Error:
        sniffed = ","
    candidates = [sniffed] + [delimiter for delimiter in _CSV_DELIMITERS if delimiter != sniffed]
    headers = {delimiter: _csv_header(text, delimiter=delimiter) for delimiter in candidates}
    for delimiter in candidates:
        if all(_column_position(headers[delimiter], name) is not None for name in wanted):
            return delimiter, headers[delimiter]
    return sniffed, headers[sniffed]


def _csv_header(text: str, *, delimiter: str) -> list[str]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for fields in reader:
            if any(value.strip() for value in fields):
                return [value.strip() for value in fields]
    except csv.Error:
        pass
    return []


def _column_position(header: list[str], name: str) -> int | None:
    """Find a column by its exact name, else by its name in any case."""
    if name in header:
        return header.index(name)
    folded = [column.casefold() for column in header]
    wanted = name.strip().casefold()
    return folded.index(wanted) if wanted in folded else None


def _accept(
    result: ReadResult,
    line: int,
    values: dict[str, object],
    *,
    text_key: str,
    label_key: str | None,
    target_key: str | None,
) -> None:
    """Append the row to `result.rows`, or to `result.rejected` with the reason it cannot be used."""
    raw_text = values.get(text_key)
    shown = raw_text if isinstance(raw_text, str) else json.dumps(values, default=str)
    if raw_text is None or (isinstance(raw_text, str) and not raw_text.strip()):
        result.rejected.append(_rejected(line, f'has an empty "{text_key}"', shown))
        return
    if not isinstance(raw_text, str):
        result.rejected.append(_rejected(line, f'has a "{text_key}" that is not text', shown))
        return
    label = None
    if label_key:
        raw_label = values.get(label_key)
        label = "" if raw_label is None or isinstance(raw_label, dict | list) else str(raw_label).strip()
        if not label:
            result.rejected.append(_rejected(line, f'has no "{label_key}"', shown))
            return
    target = None
    if target_key:
        try:
            target = _parse_target(values.get(target_key))
        except ValueError as error:
            result.rejected.append(_rejected(line, f'has a "{target_key}" that {error}', shown))
            return
    result.rows.append(RawRow(line=line, text=raw_text, label=label, target=target))


def _parse_target(value: object) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("is empty")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"is not a number ({value!r})")
    if isinstance(value, str):
        text = value.strip()
        if _DECIMAL_COMMA.fullmatch(text):
            text = text.replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f'is not a number ("{value.strip()}")') from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"is not a finite number ({value})")
    return number


def _check_shares(*, validation: float, test: float) -> None:
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError(f"validation ({validation}) and test ({test}) must be >= 0 and leave room for training")


def _shingle_hashes(canonical: str, *, size: int) -> frozenset[int]:
    """Hash the word `size`-grams of a normalised, lowercased text (character grams for very short texts)."""
    words = canonical.split()
    if len(words) >= size:
        grams: Iterable[str] = (" ".join(words[i : i + size]) for i in range(len(words) - size + 1))
    else:
        joined = " ".join(words)
        grams = (joined[i : i + size] for i in range(max(1, len(joined) - size + 1)))
    return frozenset(int.from_bytes(hashlib.sha1(gram.encode("utf-8")).digest()[:4], "little") for gram in grams)


def _cluster_leaders(shingle_sets: list[frozenset[int]], *, threshold: float, num_perm: int) -> list[int]:
    """Give each set the index of the first earlier-or-same set it is a near-duplicate of (itself if none).

    A set joins the cluster of the first kept set whose Jaccard similarity with it reaches `threshold`;
    clusters do not chain, so every member is close to the first one.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not shingle_sets:
        return []
    # The shingles are already 32-bit hashes, so the MinHash hash function is the identity (`int`).
    template = MinHash(num_perm=num_perm, seed=_MINHASH_SEED, hashfunc=int)
    minhashes = []
    for shingles in shingle_sets:
        minhash = template.copy()
        minhash.update_batch(shingles)
        minhashes.append(minhash)
    index = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)
    with index.insertion_session(buffer_size=len(minhashes)) as session:
        for position, minhash in enumerate(minhashes):
            session.insert(position, minhash, check_duplication=False)

    leaders = [-1] * len(shingle_sets)
    for position, minhash in enumerate(minhashes):
        if leaders[position] >= 0:
            continue
        leaders[position] = position
        mine = shingle_sets[position]
        # Candidates are unassigned only if later than `position`, so the query order does not matter.
        for other in index.query(minhash):
            if leaders[other] < 0 and _jaccard(mine, shingle_sets[other]) >= threshold:
                leaders[other] = position
    return leaders


def _jaccard(first: frozenset[int], second: frozenset[int]) -> float:
    return len(first & second) / len(first | second)
