"""Reads of the tutor: courses a user may open, material with its passages, sessions with their citations."""

import re
from dataclasses import dataclass

from django.db.models import Count, Max, Q, QuerySet
from django.urls import reverse

from education.models import Course, CourseMaterial, MaterialChunk, TutorMessage, TutorSession

_CITATION = re.compile(r"\[(\d+)\]")


def member_courses(*, user) -> QuerySet[Course]:
    """Courses the user teaches or is enrolled in."""
    ids = Course.objects.filter(Q(teacher=user) | Q(students=user)).values("pk")
    return Course.objects.filter(pk__in=ids)


def taught_courses(*, user) -> QuerySet[Course]:
    return Course.objects.filter(teacher=user)


def tutor_home_courses(*, user) -> list[Course]:
    """The user's courses with how much material each has, and whether the user teaches it."""
    courses = list(member_courses(user=user).select_related("teacher").annotate(
        material_total=Count("materials", distinct=True),
        material_ready=Count("materials", filter=Q(materials__state=CourseMaterial.State.READY), distinct=True),
    ).order_by("title", "pk"))
    for course in courses:
        course.is_teacher = course.teacher_id == user.pk
    return courses


def course_materials(*, course: Course) -> QuerySet[CourseMaterial]:
    return (CourseMaterial.objects.filter(course=course).select_related("uploaded_by").defer("text", "page_starts")
            .order_by("title", "pk"))


@dataclass
class DocumentSegment:
    text: str
    anchor: str  # "" or the id of the passage that starts here
    position: int | None  # the passage number (from 1) that starts here
    highlighted: bool


def material_document(*, material: CourseMaterial, chunks: list[MaterialChunk],
                      highlight: MaterialChunk | None) -> list[DocumentSegment]:
    """The document cut at every passage border: an anchor where each passage starts, the cited one marked."""
    text = material.text
    cuts = {0, len(text)}
    starts = {}
    for chunk in chunks:
        cuts.update((chunk.char_start, chunk.char_end))
        starts.setdefault(chunk.char_start, chunk)
    if highlight is not None:
        cuts.update((highlight.char_start, highlight.char_end))
    borders = sorted(c for c in cuts if 0 <= c <= len(text))
    segments = []
    for start, end in zip(borders, borders[1:], strict=False):
        chunk = starts.get(start)
        marked = highlight is not None and highlight.char_start <= start and end <= highlight.char_end
        segments.append(DocumentSegment(text=text[start:end], anchor=f"passage-{chunk.pk}" if chunk else "",
                                        position=chunk.position + 1 if chunk else None, highlighted=marked))
    return segments


def course_sessions(*, course: Course) -> QuerySet[TutorSession]:
    """A course's sessions with their counts, newest activity first (the teacher's view)."""
    return (TutorSession.objects.filter(course=course).select_related("student")
            .annotate(message_total=Count("messages"),
                      flagged_total=Count("messages", filter=Q(messages__flagged_at__isnull=False)),
                      last_activity=Max("messages__created"))
            .order_by("-last_activity", "-pk"))


def course_flagged_messages(*, course: Course, limit: int = 100) -> QuerySet[TutorMessage]:
    return (TutorMessage.objects.filter(session__course=course, flagged_at__isnull=False)
            .select_related("session__student").order_by("-flagged_at", "-pk")[:limit])


def student_sessions(*, course: Course, student) -> QuerySet[TutorSession]:
    return (TutorSession.objects.filter(course=course, student=student)
            .annotate(message_total=Count("messages")).order_by("-created", "-pk"))


@dataclass
class Citation:
    number: int
    chunk: MaterialChunk
    score: float | None

    @property
    def url(self) -> str:
        """The cited passage, highlighted in its document (the page's links and the explanation's JSON)."""
        return (f"{reverse('education:tutor_material_detail', args=[self.chunk.material_id])}"
                f"?passage={self.chunk.pk}#passage-{self.chunk.pk}")


def session_messages(*, session: TutorSession) -> list[TutorMessage]:
    """The session's messages, each with `citations` (numbered passages), `answer_parts` [(text, citation,
    marked)] (the short answer marked in the sentence) and `explanation_parts` [(text, citation)]."""
    messages = list(session.messages.all().order_by("created", "pk"))
    ids = {i for m in messages for i in m.cited_chunk_ids}
    chunks = MaterialChunk.objects.filter(pk__in=ids, material__course_id=session.course_id).select_related(
        "material").defer("embedding", "material__text", "material__page_starts")
    by_id = {c.pk: c for c in chunks}
    for message in messages:
        message.citations = _citations(message, by_id)
        message.answer_parts = phrase_marked(citation_parts(message.answer, message.citations), message.short_answer)
        message.explanation_parts = citation_parts(message.explanation, message.citations)
    return messages


def _citations(message: TutorMessage, by_id: dict[int, MaterialChunk]) -> list[Citation]:
    return [Citation(number=n, chunk=by_id[i], score=(message.scores[n - 1] if n <= len(message.scores) else None))
            for n, i in enumerate(message.cited_chunk_ids, start=1) if i in by_id]


def _explanation_parts(message: TutorMessage) -> list[tuple[str, Citation | None]]:
    """One message's explanation split around its citations (for the page's script that polls for it)."""
    chunks = MaterialChunk.objects.filter(pk__in=message.cited_chunk_ids,
                                          material__course_id=message.session.course_id).only("pk", "material_id")
    return citation_parts(message.explanation, _citations(message, {c.pk: c for c in chunks}))


def explanation_state(message: TutorMessage) -> dict:
    """What the page's script polls for: whether the explanation is still being written, its text and its parts
    (text and passage link). A hint's explanation is held back until the student asks for the answer."""
    held_back = message.state == TutorMessage.State.HINT
    parts = [] if held_back else _explanation_parts(message)
    return {"pending": message.explanation_pending,
            "explanation": "" if held_back else message.explanation,
            "parts": [{"text": text, "href": citation.url if citation else ""} for text, citation in parts]}


def citation_parts(text: str, citations: list[Citation]) -> list[tuple[str, Citation | None]]:
    """`text` split around its [n] marks, each mark paired with its citation (None for plain text)."""
    by_number = {c.number: c for c in citations}
    parts, last = [], 0
    for match in _CITATION.finditer(text):
        citation = by_number.get(int(match.group(1)))
        if citation is None:
            continue
        if match.start() > last:
            parts.append((text[last:match.start()], None))
        parts.append((match.group(), citation))
        last = match.end()
    if last < len(text):
        parts.append((text[last:], None))
    return parts


def phrase_marked(parts: list[tuple[str, Citation | None]], phrase: str) -> list[tuple[str, Citation | None, bool]]:
    """`parts` with the first plain-text occurrence of `phrase` split out and flagged, for the page to mark.

    The short answer is shown inside its sentence, not on its own: extracted without a QA model it is right far
    less often than the sentence holds the answer (docs/benchmarks.md), so it guides the eye and the sentence
    stays the answer.
    """
    out, pending = [], bool(phrase)
    for text, citation in parts:
        at = text.find(phrase) if pending and citation is None else -1
        if at < 0:
            out.append((text, citation, False))
            continue
        out += [(text[:at], None, False), (phrase, None, True), (text[at + len(phrase):], None, False)]
        pending = False
    return [part for part in out if part[0]]
