"""Course material: read uploads (text, Markdown, PDF), cut them into passages, embed the passages and their
sentences."""

import io
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from core.models import TaskRun
from core.services import task_run_enqueue
from education.models import Course, CourseMaterial, MaterialChunk
from education.services.retrieval import Embed, sentences
from mlcore import api as ml
from mlcore.data import DataError, decode_text

MATERIAL_MAX_BYTES = 10 * 1024 * 1024
EMBED_BATCH = 64
CHUNK_MIN_WORDS = 120
CHUNK_MAX_WORDS = 200
OVERLAP_MAX_WORDS = 40
_EXTENSIONS = {".txt": CourseMaterial.Kind.TEXT, ".text": CourseMaterial.Kind.TEXT,
               ".md": CourseMaterial.Kind.MARKDOWN, ".markdown": CourseMaterial.Kind.MARKDOWN,
               ".pdf": CourseMaterial.Kind.PDF}
_BLOCK = re.compile(r"\S(?:.*?\S)?(?=\n[ \t]*\n|\s*\Z)", re.S)
_MD_HEADING = re.compile(r"(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SENTENCE = re.compile(r"\S.*?(?:[.!?][\"”’)\]]*(?=\s)|\Z)", re.S)
_WORD = re.compile(r"\S+")


class MaterialError(DataError):
    """An upload that cannot become course material; the message is for the teacher."""


@dataclass
class ChunkSpan:
    char_start: int
    char_end: int
    heading: str
    page: int | None = None


# Reading uploads


def material_read(*, data: bytes, filename: str) -> tuple[str, str, list[int]]:
    """(kind, text, page_starts) of an uploaded file; raises MaterialError with a message for the teacher."""
    if len(data) > MATERIAL_MAX_BYTES:
        raise MaterialError(f"{filename} is {len(data) / 1024 / 1024:.1f} MB; course material can be at most "
                            f"{MATERIAL_MAX_BYTES // 1024 // 1024} MB.")
    kind = _EXTENSIONS.get(PurePath(filename).suffix.lower())
    if kind is None:
        raise MaterialError(f"{filename}: upload a plain text (.txt), Markdown (.md) or PDF (.pdf) file.")
    if not data.strip():
        raise MaterialError(f"{filename} is empty.")
    if kind == CourseMaterial.Kind.PDF:
        text, page_starts = _pdf_text(data, filename=filename)
        return kind, text, page_starts
    if data.lstrip().startswith(b"%PDF-"):
        raise MaterialError(f"{filename} is a PDF file with a text file's name; rename it to .pdf.")
    try:
        text = decode_text(data, filename=filename)
    except DataError as error:
        raise MaterialError(str(error).replace("Upload a CSV, JSON Lines or plain text file; save a spreadsheet "
                                               "as CSV first.", "Upload plain text, Markdown or PDF.")) from error
    return kind, _clean(text), []


def material_text_clean(text: str) -> str:
    """Pasted text as it is stored: Unix line ends, no NULs, no trailing blank space."""
    return _clean(text)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.strip("\n").rstrip()


def _pdf_text(data: bytes, *, filename: str) -> tuple[str, list[int]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.lstrip().startswith(b"%PDF-"):
        raise MaterialError(f"{filename} is not a PDF file (it does not start with %PDF-).")
    if b"%%EOF" not in data[-2048:]:
        raise MaterialError(f"{filename} looks truncated (the PDF has no end marker); upload the complete file.")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise MaterialError(f"{filename} is password-protected; upload an unprotected copy.")
        pages = [_clean(page.extract_text() or "") for page in reader.pages]
    except MaterialError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise MaterialError(f"{filename} could not be read as a PDF ({error}).") from error
    if not any(page.strip() for page in pages):
        raise MaterialError(f"{filename} has no text that can be extracted (a scanned document?). "
                            "Upload a PDF with a text layer, or the text itself.")
    text, page_starts = "", []
    for page in pages:
        if text:
            text += "\n\n"
        page_starts.append(len(text))
        text += page
    return text.rstrip(), page_starts


# Chunking


def chunk_spans(text: str, *, kind: str = CourseMaterial.Kind.TEXT,
                page_starts: list[int] | None = None) -> list[ChunkSpan]:
    """Cut a document into passages of about 120–200 words along its paragraphs and headings.

    A new heading starts a new passage; paragraphs are joined until a passage has enough words; a paragraph
    longer than a passage is cut at sentence ends. A passage starts with the previous one's last sentence
    (when short) so an answer on the border is whole in one of them. Every span is text[char_start:char_end].
    """
    units: list[tuple[int, int, int, str | None]] = []  # (start, end, words, heading path when a heading)
    headings: list[tuple[int, str]] = []
    for block in _BLOCK.finditer(text):
        first_line = block.group().split("\n", 1)[0]
        heading = _MD_HEADING.match(first_line) if kind == CourseMaterial.Kind.MARKDOWN else None
        if heading:
            level = len(heading.group(1))
            headings = [h for h in headings if h[0] < level] + [(level, heading.group(2).strip())]
            line_end = block.start() + len(first_line)
            units.append((block.start(), line_end, len(_WORD.findall(first_line)), " › ".join(h for _, h in headings)))
            rest = block.group()[len(first_line):]
            if rest.strip():
                offset = line_end + len(rest) - len(rest.lstrip())
                units.extend(_paragraph_units(text, offset, block.end()))
            continue
        units.extend(_paragraph_units(text, block.start(), block.end()))

    spans: list[ChunkSpan] = []
    current: list[tuple[int, int, int]] = []
    has_body = False
    heading_path = ""
    for start, end, words, heading in units:
        if heading is not None:
            # A heading starts a passage and belongs to it; headings with nothing between them stay together.
            if has_body:
                spans.append(ChunkSpan(current[0][0], current[-1][1], heading_path))
                current, has_body = [], False
            current.append((start, end, words))
            heading_path = heading
            continue
        total = sum(w for *_, w in current)
        if has_body and (total >= CHUNK_MIN_WORDS or total + words > CHUNK_MAX_WORDS):
            spans.append(ChunkSpan(current[0][0], current[-1][1], heading_path))
            tail = _overlap_tail(text, current)
            current = [tail] if tail else []
        current.append((start, end, words))
        has_body = True
    if has_body:
        spans.append(ChunkSpan(current[0][0], current[-1][1], heading_path))
    starts = page_starts or []
    for span in spans:
        if starts:
            span.page = bisect_right(starts, span.char_start)
    return _merge_overlap_only(spans)


def _paragraph_units(text: str, start: int, end: int) -> list[tuple[int, int, int, None]]:
    """A paragraph as one unit, or as sentence groups of at most CHUNK_MAX_WORDS words when it is longer."""
    words = len(_WORD.findall(text, start, end))
    if words <= CHUNK_MAX_WORDS:
        return [(start, end, words, None)]
    units, group_start, group_end, group_words = [], None, None, 0
    for sentence in _sentences(text, start, end):
        for piece_start, piece_end in _split_long(text, *sentence):
            n = len(_WORD.findall(text, piece_start, piece_end))
            if group_start is not None and group_words + n > CHUNK_MAX_WORDS // 2:
                units.append((group_start, group_end, group_words, None))
                group_start, group_words = None, 0
            if group_start is None:
                group_start = piece_start
            group_end, group_words = piece_end, group_words + n
    if group_start is not None:
        units.append((group_start, group_end, group_words, None))
    return units


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A sentence with more words than a passage holds, cut every CHUNK_MAX_WORDS // 2 words."""
    words = list(_WORD.finditer(text, start, end))
    step = CHUNK_MAX_WORDS // 2
    if len(words) <= step:
        return [(start, end)]
    return [(words[i].start(), words[min(i + step, len(words)) - 1].end()) for i in range(0, len(words), step)]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text, start, end)]


def _overlap_tail(text: str, units: list[tuple[int, int, int]]) -> tuple[int, int, int] | None:
    start, end, _ = units[-1]
    sentences = _sentences(text, start, end)
    if len(sentences) < 2 and len(units) < 2:
        return None
    s_start, s_end = sentences[-1] if sentences else (start, end)
    words = len(_WORD.findall(text, s_start, s_end))
    if words > OVERLAP_MAX_WORDS or s_start == units[0][0]:
        return None
    return (s_start, s_end, words)


def _merge_overlap_only(spans: list[ChunkSpan]) -> list[ChunkSpan]:
    """Drop a passage that holds nothing beyond the one before it (only its overlap)."""
    kept: list[ChunkSpan] = []
    for span in spans:
        if kept and span.char_end <= kept[-1].char_end:
            continue
        kept.append(span)
    return kept


# Actions


@transaction.atomic
def material_create(*, course: Course, user, title: str, kind: str, text: str, filename: str = "",
                    size_bytes: int = 0, page_starts: list[int] | None = None, enqueue: bool = True) -> CourseMaterial:
    """Add a document to a course with its passages; embedding them is queued on the ml workers."""
    title = title.strip()[:200] or (PurePath(filename).stem if filename else "")
    if not title:
        raise MaterialError("Give the material a title.")
    if not text.strip():
        raise MaterialError(f"{filename or title} is empty.")
    spans = chunk_spans(text, kind=kind, page_starts=page_starts)
    if not spans:
        raise MaterialError(f"{filename or title} has no text to cut into passages.")
    if CourseMaterial.objects.filter(course=course, title=title).exists():
        raise MaterialError(f"This course already has material titled “{title}”; choose another title.")
    try:
        with transaction.atomic():
            material = CourseMaterial.objects.create(
                course=course, title=title, kind=kind, filename=filename[:255], size_bytes=size_bytes, text=text,
                page_starts=page_starts or [], uploaded_by=user, chunk_count=len(spans),
            )
    except IntegrityError as error:
        raise MaterialError(f"This course already has material titled “{title}”; choose another title.") from error
    MaterialChunk.objects.bulk_create([
        MaterialChunk(material=material, position=i, text=text[s.char_start:s.char_end], char_start=s.char_start,
                      char_end=s.char_end, page=s.page, heading=s.heading[:500])
        for i, s in enumerate(spans)
    ])
    if enqueue:
        material_embed_enqueue(material_id=material.pk)
    return material


def material_upload(*, course: Course, user, title: str, filename: str, data: bytes) -> CourseMaterial:
    """Read an uploaded file and add it to the course (see material_read for what is refused)."""
    kind, text, page_starts = material_read(data=data, filename=filename)
    return material_create(course=course, user=user, title=title, kind=kind, text=text, filename=filename,
                           size_bytes=len(data), page_starts=page_starts)


def material_delete(*, material: CourseMaterial) -> None:
    material.delete()


EMBED_TASK = "education.tutor_embed_material"


def material_embed_enqueue(*, material_id: int) -> None:
    """Queue the embedding on the ml workers under the task ledger, in the caller's transaction (sent after commit).

    A lost worker's run is run again and a message the broker lost is re-sent (core.taskruns_recover); when the
    attempts run out, material_embed_gave_up fails the material so the teacher can retry it.
    """
    task_run_enqueue(task=EMBED_TASK, args=[material_id])


def material_retry(*, material: CourseMaterial) -> bool:
    """Queue a failed material's embedding again; False when it had not failed."""
    with transaction.atomic():
        updated = CourseMaterial.objects.filter(pk=material.pk, state=CourseMaterial.State.FAILED).update(
            state=CourseMaterial.State.PENDING, error="")
        if updated:
            material_embed_enqueue(material_id=material.pk)
    return bool(updated)


def material_embed(*, material_id: int, rerun: bool = False) -> str:
    """Embed a pending material's passages and their sentences in batches; safe to run twice (the row is claimed
    first).

    `rerun`: the task ledger gave this call the run of a worker that was lost, so a material left processing by
    that worker is taken over. Returns the material's state afterwards ("skipped" when another run had it or it
    is gone).
    """
    states = [CourseMaterial.State.PENDING]
    if rerun:
        states.append(CourseMaterial.State.PROCESSING)
    claimed = CourseMaterial.objects.filter(pk=material_id, state__in=states).update(
        state=CourseMaterial.State.PROCESSING, attempts=F("attempts") + 1, processing_since=timezone.now())
    if not claimed:
        return "skipped"
    try:
        chunks = list(MaterialChunk.objects.filter(material_id=material_id).only("pk", "text", "heading"))
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start:start + EMBED_BATCH]
            passages_embed(batch)
            MaterialChunk.objects.bulk_update(batch, ["embedding", "sentence_embeddings"])
            # A heartbeat: materials_recover fails only a material no batch has moved for a while, so a long
            # book a live worker is still embedding is never taken for a stalled one.
            CourseMaterial.objects.filter(pk=material_id, state=CourseMaterial.State.PROCESSING).update(
                processing_since=timezone.now())
    except Exception as error:  # noqa: BLE001  (any model failure is shown to the teacher)
        CourseMaterial.objects.filter(pk=material_id).update(
            state=CourseMaterial.State.FAILED, error=f"Embedding failed: {error}"[:2000])
        return CourseMaterial.State.FAILED
    CourseMaterial.objects.filter(pk=material_id).update(
        state=CourseMaterial.State.READY, error="", chunk_count=len(chunks), embedded_at=timezone.now())
    return CourseMaterial.State.READY


STALLED_MESSAGE = "The worker stopped while embedding this material; press Retry to embed it again."


def material_embed_gave_up(*, material_id: int, attempts: int) -> bool:
    """The ledger gave up embedding a material (its workers were lost each time): fail it, so it can be retried."""
    return bool(CourseMaterial.objects.filter(
        pk=material_id, state__in=[CourseMaterial.State.PENDING, CourseMaterial.State.PROCESSING],
    ).update(state=CourseMaterial.State.FAILED,
             error=f"The worker stopped {attempts} time{'s' if attempts != 1 else ''} while embedding this "
                   "material; press Retry to embed it again."))


def materials_recover(*, stale_after: timedelta = timedelta(minutes=15)) -> list[int]:
    """Fail materials a lost worker left processing (no batch embedded for `stale_after`: a live worker writes
    `processing_since` after every batch), so the teacher can retry them; returns their ids.

    Embedding runs under the task ledger, whose sweep re-runs a lost worker's material within a minute or two;
    this is the backstop for a material whose message came without a ledger row (sent by older code).
    """
    cutoff = timezone.now() - stale_after
    stalled = list(CourseMaterial.objects.filter(state=CourseMaterial.State.PROCESSING, processing_since__lt=cutoff)
                   .values_list("pk", flat=True))
    failed = []
    for pk in stalled:  # one conditional update each: a worker finishing right now keeps its result
        if CourseMaterial.objects.filter(pk=pk, state=CourseMaterial.State.PROCESSING,
                                         processing_since__lt=cutoff).update(state=CourseMaterial.State.FAILED,
                                                                             error=STALLED_MESSAGE):
            failed.append(pk)
    return failed


SENTENCE_VECTORS_TASK = "education.tutor_sentence_vectors"


def _sentence_vectors_missing():
    """Passages of ready material embedded before their sentence vectors were stored with them (migration 0010).

    Only ready material: material_embed owns pending, processing and failed material, and stores both.
    """
    return MaterialChunk.objects.filter(material__state=CourseMaterial.State.READY, embedding__isnull=False,
                                        sentence_embeddings__isnull=True)


def sentence_vectors_fill(*, material_id: int) -> int:
    """Store the sentence vectors of a ready material's passages embedded without them, in batches; returns how
    many passages it filled (0 on a second run)."""
    chunks = list(_sentence_vectors_missing().filter(material_id=material_id).only("pk", "text", "heading"))
    filled = 0
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start:start + EMBED_BATCH]
        passages_embed(batch, passages=False)
        # Filtered again as it is written: vectors stored meanwhile (another run, a re-embedding) are kept, and
        # a material material_embed took over meanwhile is left to it.
        filled += _sentence_vectors_missing().bulk_update(batch, ["sentence_embeddings"])
    return filled


def sentence_vectors_fill_enqueue(*, material_id: int) -> None:
    """Queue a material's sentence vectors fill on the ml workers under the task ledger (sent after commit)."""
    task_run_enqueue(task=SENTENCE_VECTORS_TASK, args=[material_id])


@dataclass
class SentenceVectorsBackfill:
    materials: int  # queued (filled, with `now`)
    passages: int  # in those materials, without sentence vectors
    already_queued: int = 0  # materials whose fill was queued or running already: not queued again


def sentence_vectors_backfill(*, now: bool = False) -> SentenceVectorsBackfill:
    """Fill the sentence vectors of all material embedded before they were stored (the upgrade step of migration
    0010): one ml task per material that lacks them, or each run in this process with `now`. Safe to run again."""
    missing = dict(_sentence_vectors_missing().order_by("material_id").values("material_id")
                   .annotate(passages=Count("pk")).values_list("material_id", "passages"))
    if now:
        filled = [sentence_vectors_fill(material_id=pk) for pk in missing]
        return SentenceVectorsBackfill(materials=sum(1 for n in filled if n), passages=sum(filled))
    runs = TaskRun.objects.filter(task=SENTENCE_VECTORS_TASK, state__in=[TaskRun.State.QUEUED, TaskRun.State.RUNNING])
    active = {args[0] for args in runs.values_list("args", flat=True) if args}
    queue = {pk: n for pk, n in missing.items() if pk not in active}
    with transaction.atomic():
        for pk in queue:
            sentence_vectors_fill_enqueue(material_id=pk)
    return SentenceVectorsBackfill(materials=len(queue), passages=sum(queue.values()),
                                   already_queued=len(missing) - len(queue))


def passages_embed(chunks: list[MaterialChunk], *, embed: Embed | None = None, passages: bool = True) -> None:
    """Set the passages' `embedding` and `sentence_embeddings` (not saved), in one call of `embed` (by default
    mlcore.api.embed): each passage's text with its heading, and each distinct sentence of theirs once.

    The sentences are `retrieval.sentences(chunk.text)`, in order: the texts the tutor's sentence rerank scores.
    `passages=False`: only the sentences are embedded and only `sentence_embeddings` is set.
    """
    embed = embed or ml.embed
    passage_sentences = [sentences(c.text) for c in chunks]
    distinct = list(dict.fromkeys(s for group in passage_sentences for s in group))
    passage_texts = [chunk_embedding_text(c) for c in chunks] if passages else []
    vectors = embed(passage_texts + distinct)
    sentence_vector = dict(zip(distinct, vectors[len(passage_texts):], strict=True))
    if passages:
        for chunk, vector in zip(chunks, vectors[:len(passage_texts)], strict=True):
            chunk.embedding = np.asarray(vector, dtype=np.float32).tobytes()
    for chunk, group in zip(chunks, passage_sentences, strict=True):
        chunk.sentence_embeddings = (np.asarray([sentence_vector[s] for s in group], dtype=np.float32).tobytes()
                                     if group else None)


def chunk_embedding_text(chunk: MaterialChunk) -> str:
    """What is embedded for a passage: its heading path gives the passage its topic."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading and chunk.heading not in chunk.text else chunk.text
