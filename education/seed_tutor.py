"""Demo course material for the tutor: a short writing guide (written for Parlance, original text)."""

from pathlib import Path

from education.models import Course, CourseMaterial
from education.services.material import material_create, material_embed, material_read

MATERIAL_DIR = Path(__file__).resolve().parent / "fixtures" / "material"


def _title(text: str, fallback: str) -> str:
    first = text.lstrip().split("\n", 1)[0]
    return first.lstrip("#").strip() or fallback


def tutor_demo_ensure(*, course: Course) -> dict:
    """Add the demo writing guide to `course` and embed it in this process; safe to run again.

    Returns {"created": titles added, "existing": titles already there, "chunks": passages in all, "embedded": n}.
    """
    created, existing, embedded = [], [], 0
    for path in sorted(MATERIAL_DIR.glob("*.md")):
        data = path.read_bytes()
        kind, text, page_starts = material_read(data=data, filename=path.name)
        title = _title(text, path.stem)
        material = CourseMaterial.objects.filter(course=course, title=title).first()
        if material is None:
            material = material_create(course=course, user=course.teacher, title=title, kind=kind, text=text,
                                       filename=path.name, size_bytes=len(data), page_starts=page_starts,
                                       enqueue=False)
            created.append(title)
        else:
            existing.append(title)
        if material.state == CourseMaterial.State.PENDING:
            embedded += material_embed(material_id=material.pk) == CourseMaterial.State.READY
    chunks = sum(CourseMaterial.objects.filter(course=course).values_list("chunk_count", flat=True))
    return {"created": created, "existing": existing, "chunks": chunks, "embedded": embedded}
