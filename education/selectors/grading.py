"""Reads for the grading pages: courses per role, the grading table, the calibration panel, an essay's page."""

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, QuerySet
from django.urls import NoReverseMatch, reverse

from education.models import Assignment, Calibration, Course, Essay, EssayVersion, Grade
from education.services import feedback as fb
from education.services.calibration import MIN_GRADED, MIN_QWK, grading_suggestions


def teacher_courses(*, user) -> QuerySet[Course]:
    return Course.objects.filter(teacher=user).annotate(
        student_count=Count("students", distinct=True), assignment_count=Count("assignments", distinct=True))


def student_courses(*, user) -> QuerySet[Course]:
    return Course.objects.filter(students=user).select_related("teacher").annotate(
        assignment_count=Count("assignments", distinct=True))


def course_assignments_for_teacher(*, course: Course) -> QuerySet[Assignment]:
    return course.assignments.annotate(
        essay_count=Count("essays", distinct=True),
        graded_count=Count("essays__versions", filter=Q(essays__versions__grade__teacher_score__isnull=False),
                           distinct=True),
        review_count=Count("essays__versions", filter=Q(essays__versions__grade__needs_review=True), distinct=True),
    ).order_by("created", "pk")


def course_assignments_for_student(*, course: Course, user) -> list[Assignment]:
    """The course's assignments, each with `my_essay` (the student's essay with its latest grade, or None)."""
    assignments = list(course.assignments.order_by("created", "pk"))
    essays = {e.assignment_id: e for e in Essay.objects.filter(assignment__course=course, student=user)
              .prefetch_related(Prefetch("versions", queryset=EssayVersion.objects.select_related("grade")
                                         .defer("embedding", "middle_embedding", "text").order_by("-number")))}
    for assignment in assignments:
        essay = essays.get(assignment.pk)
        assignment.my_essay = essay
        assignment.my_latest = essay.versions.all()[0] if essay and essay.versions.all() else None
    return assignments


@dataclass
class GradingRow:
    essay: Essay
    version: EssayVersion
    grade: Grade | None
    versions: int


def grading_rows(*, assignment: Assignment) -> list[GradingRow]:
    """One row per essay: its latest version and grade (one query)."""
    versions = (EssayVersion.objects.filter(essay__assignment=assignment)
                .select_related("essay__student", "grade", "grade__overridden_by")
                .defer("embedding", "middle_embedding", "text", "essay__text")
                .order_by("essay__student__username", "-number"))
    rows, seen = [], {}
    for version in versions:
        if version.essay_id in seen:
            seen[version.essay_id].versions += 1
            continue
        grade = getattr(version, "grade", None) if hasattr(version, "grade") else None
        row = GradingRow(essay=version.essay, version=version, grade=grade, versions=1)
        seen[version.essay_id] = row
        rows.append(row)
    return rows


def score_distribution_figure(*, assignment: Assignment, rows: list[GradingRow]) -> dict | None:
    """Bars of automatic scores beside teacher grades, over the rubric's range."""
    auto = Counter(r.grade.score for r in rows if r.grade)
    teacher = Counter(r.grade.teacher_score for r in rows if r.grade and r.grade.teacher_score is not None)
    if not auto:
        return None
    scores = list(range(assignment.score_min, assignment.score_max + 1))
    return {
        "data": [
            {"type": "bar", "name": "automatic score", "x": scores, "y": [auto.get(s, 0) for s in scores],
             "marker": {"color": "#2458c6"}},
            {"type": "bar", "name": "teacher grade", "x": scores, "y": [teacher.get(s, 0) for s in scores],
             "marker": {"color": "#1f7a4d"}},
        ],
        # The legend sits above the bars: below them it ran into the x-axis title.
        "layout": {"height": 260, "barmode": "group", "margin": {"t": 30, "r": 10, "b": 40, "l": 40},
                   "xaxis": {"title": {"text": "score"}, "dtick": 1}, "yaxis": {"title": {"text": "essays"}},
                   "legend": {"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"}},
    }


def _job_url(job_id: int | None) -> str | None:
    if not job_id:
        return None
    try:
        return reverse("mlcore:job", args=[job_id])
    except NoReverseMatch:
        return None


def calibration_panel(*, assignment: Assignment) -> dict:
    """Agreement with the teacher (cross-validated QWK and n), whether it is enough, and what to grade next."""
    # The fitted model is not shown: with a kernel part it holds every graded essay's row (MBs for a big class).
    calibrations = assignment.calibrations.defer("ridge")
    latest = calibrations.select_related("training_job").order_by("-created", "-pk").first()
    current = latest if latest and latest.state == Calibration.State.DONE else (
        calibrations.filter(state=Calibration.State.DONE).order_by("-finished", "-pk").first())
    graded_now = EssayVersion.objects.filter(essay__assignment=assignment, grade__teacher_score__isnull=False).count()
    reliable = bool(current and current.n_graded >= MIN_GRADED and (current.qwk or 0) >= MIN_QWK)
    if current is None:
        status = (f"Not calibrated yet. Grade at least {MIN_GRADED} essays and press Calibrate; until then "
                  "scores are a rough estimate from length and errors, and all are marked for review.")
    elif current.n_graded < MIN_GRADED:
        status = (f"Learned from {current.n_graded} graded essays only — below the minimum of {MIN_GRADED}. "
                  "Grade the essays suggested below, then calibrate again.")
    elif (current.qwk or 0) < MIN_QWK:
        status = (f"Agreement with your grades is low (QWK {current.qwk:.2f}, below {MIN_QWK}). "
                  "Grade more essays — especially the ones suggested below — and calibrate again.")
    else:
        status = f"The scorer agrees with your grades (QWK {current.qwk:.2f} over {current.n_graded} essays)."
    return {
        "latest": latest, "current": current, "graded_now": graded_now, "reliable": reliable, "status": status,
        "new_grades": graded_now - (current.n_graded if current else 0), "min_graded": MIN_GRADED,
        "min_qwk": MIN_QWK, "running": bool(latest and latest.is_active),
        "job_url": _job_url(latest.training_job_id if latest else None),
        "suggestions": [] if reliable else grading_suggestions(assignment=assignment),
    }


def essay_page(*, essay: Essay, number: int | None = None) -> dict:
    """Everything the essay page shows for one version: score, traits, highlights, comments, difference."""
    versions = list(essay.versions.select_related("grade", "grade__overridden_by")
                    .defer("embedding", "middle_embedding").order_by("number"))
    if not versions:
        return {"versions": [], "version": None}
    version = next((v for v in versions if v.number == number), versions[-1]) if number else versions[-1]
    grade = getattr(version, "grade", None) if hasattr(version, "grade") else None
    previous = next((v for v in reversed(versions) if v.number < version.number), None)
    previous_grade = getattr(previous, "grade", None) if previous is not None and hasattr(previous, "grade") else None
    items = grade.feedback if grade else []
    comments = [{"number": n, **item, "excerpt": version.text[item["start"]:item["end"]][:160]}
                for n, item in enumerate(items, start=1)]
    statistics = grade.statistics if grade else {}
    return {
        "versions": versions, "version": version, "grade": grade, "previous": previous,
        "difference": (grade.final_score - previous_grade.final_score) if grade and previous_grade else None,
        "segments": fb.highlight_segments(version.text, items), "comments": comments,
        "kind_counts": sorted(Counter(i["kind"] for i in items).items()), "statistics": statistics,
        "flesch_label": fb.flesch_label(statistics["flesch_reading_ease"]) if statistics.get("words") else "",
        "rubric": essay.assignment.rubric, "traits": trait_lines(grade, essay.assignment) if grade else [],
        "history_figure": _history_figure(versions, essay.assignment),
        "log": list(grade.override_log.select_related("teacher")) if grade else [],
    }


def trait_lines(grade: Grade, assignment: Assignment) -> list[dict]:
    """Each trait score with the closest score line of the rubric criterion of the same name (ties: the lower)."""
    criteria = {c.get("name", "").lower(): c for c in assignment.rubric}
    out = []
    # JSON objects keep no key order on PostgreSQL (jsonb): show traits in the assignment's order.
    order = {name: i for i, name in enumerate(assignment.traits)}
    for trait, score in sorted(grade.trait_scores.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        lines = criteria.get(trait.lower(), {}).get("lines", [])
        closest = min(lines, key=lambda line: (abs(line["score"] - score), line["score"]), default=None)
        out.append({"name": trait, "score": score, "line": closest["text"] if closest else "",
                    "line_score": closest["score"] if closest else None})
    return out


def _history_figure(versions: list[EssayVersion], assignment: Assignment) -> dict | None:
    graded = [v for v in versions if hasattr(v, "grade")]
    if len(graded) < 2:
        return None
    return {
        "data": [{"type": "scatter", "mode": "lines+markers", "name": "score",
                  "x": [f"v{v.number}" for v in graded], "y": [v.grade.final_score for v in graded],
                  "line": {"color": "#2458c6"}}],
        "layout": {"height": 220, "margin": {"t": 10, "r": 10, "b": 40, "l": 40},
                   "yaxis": {"title": {"text": "score"}, "range": [assignment.score_min - 0.5,
                                                                   assignment.score_max + 0.5], "dtick": 1}},
    }
