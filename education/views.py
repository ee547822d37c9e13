"""Education pages for essay grading. Thin: parse input, call one service or selector, render.

Another user's course, assignment or essay is a 404 (lookups filter by owner); other roles get a 403.
"""

from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.roles import Role, has_any_role, role_required
from education import forms
from education.models import Assignment, Course, Essay, Grade
from education.selectors import grading as selectors
from education.services import calibration as calibration_services
from education.services import courses as course_services
from education.services import grading as grading_services

TEACHER, STUDENT = Role.TEACHER, Role.STUDENT

# The rubric a new assignment's form starts from.
DEFAULT_RUBRIC = [
    {"name": "Ideas", "description": "A clear position, developed with reasons and examples.",
     "lines": [{"score": 6, "text": "Insightful position, fully developed."},
               {"score": 1, "text": "No clear position."}]},
    {"name": "Organization", "description": "Paragraphs follow a plan and are linked by transitions.",
     "lines": [{"score": 6, "text": "Logical order with smooth transitions."},
               {"score": 1, "text": "No discernible order."}]},
    {"name": "Conventions", "description": "Spelling, grammar, punctuation and capitals are correct.",
     "lines": [{"score": 6, "text": "Almost no errors."}, {"score": 1, "text": "Errors block the meaning."}]},
]


def _teacher_assignment(request, assignment_id: int) -> Assignment:
    return get_object_or_404(Assignment.objects.select_related("course"), pk=assignment_id,
                             course__teacher=request.user)


@role_required(STUDENT, TEACHER)
def index(request):
    is_teacher = has_any_role(request.user, [TEACHER])
    is_student = has_any_role(request.user, [STUDENT])
    return render(request, "education/index.html", {
        "taught": list(selectors.teacher_courses(user=request.user)) if is_teacher else None,
        "enrolled": list(selectors.student_courses(user=request.user)) if is_student else None,
    })


@role_required(STUDENT, TEACHER)
def course_detail(request, course_id: int):
    course = get_object_or_404(
        Course.objects.select_related("teacher").filter(Q(teacher=request.user) | Q(students=request.user)).distinct(),
        pk=course_id,
    )
    if course.teacher_id == request.user.pk and has_any_role(request.user, [TEACHER]):
        return render(request, "education/course_teacher.html", {
            "course": course, "assignments": selectors.course_assignments_for_teacher(course=course),
            "students": course.students.order_by("username"),
        })
    if not has_any_role(request.user, [STUDENT]):
        raise Http404
    return render(request, "education/course_student.html", {
        "course": course, "assignments": selectors.course_assignments_for_student(course=course, user=request.user),
    })


def _assignment_form_page(request, *, course: Course, assignment: Assignment | None):
    if request.method == "POST":
        form = forms.AssignmentForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = course_services.assignment_save(
                    course=course, assignment=assignment, title=data["title"], prompt=data["prompt"],
                    rubric=data["rubric"], score_min=data["score_min"], score_max=data["score_max"],
                    traits=data["traits"])
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Saved “{saved.title}”.")
                return redirect("education:grading", assignment_id=saved.pk)
    elif assignment is not None:
        form = forms.AssignmentForm(initial={
            "title": assignment.title, "prompt": assignment.prompt, "score_min": assignment.score_min,
            "score_max": assignment.score_max, "traits": ", ".join(assignment.traits),
            "rubric": course_services.rubric_format(assignment.rubric)})
    else:
        form = forms.AssignmentForm(initial={"rubric": course_services.rubric_format(DEFAULT_RUBRIC)})
    status = 400 if request.method == "POST" else 200
    return render(request, "education/assignment_form.html",
                  {"form": form, "course": course, "assignment": assignment}, status=status)


@role_required(TEACHER)
def assignment_new(request, course_id: int):
    course = get_object_or_404(Course, pk=course_id, teacher=request.user)
    return _assignment_form_page(request, course=course, assignment=None)


@role_required(TEACHER)
def assignment_edit(request, assignment_id: int):
    assignment = _teacher_assignment(request, assignment_id)
    return _assignment_form_page(request, course=assignment.course, assignment=assignment)


@role_required(TEACHER)
def grading(request, assignment_id: int):
    assignment = _teacher_assignment(request, assignment_id)
    rows = selectors.grading_rows(assignment=assignment)
    return render(request, "education/grading.html", {
        "assignment": assignment, "course": assignment.course, "rows": rows,
        "panel": selectors.calibration_panel(assignment=assignment),
        "distribution": selectors.score_distribution_figure(assignment=assignment, rows=rows),
        "calibrate_form": forms.CalibrateForm(),
        "score_range": range(assignment.score_min, assignment.score_max + 1),
    })


@require_POST
@role_required(TEACHER)
def calibrate(request, assignment_id: int):
    assignment = _teacher_assignment(request, assignment_id)
    form = forms.CalibrateForm(request.POST)
    form.is_valid()
    try:
        calibration_services.calibration_start(assignment=assignment, user=request.user,
                                               finetune=form.cleaned_data.get("finetune", False))
    except grading_services.GradingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Calibration queued: the ml workers fit the scorer to your grades.")
    return redirect("education:grading", assignment_id=assignment.pk)


@require_POST
@role_required(TEACHER)
def grade_override(request, grade_id: int):
    grade = get_object_or_404(Grade.objects.select_related("version__essay__assignment__course",
                                                           "version__essay__student"),
                              pk=grade_id, version__essay__assignment__course__teacher=request.user)
    assignment = grade.version.essay.assignment
    form = forms.OverrideForm(request.POST)
    if form.is_valid():
        try:
            grading_services.grade_override(grade=grade, teacher=request.user, score=form.cleaned_data["score"],
                                            reason=form.cleaned_data["reason"])
        except grading_services.GradingError as exc:
            messages.error(request, f"{grade.version.essay.student.username}: {exc}")
        else:
            messages.success(request, f"Saved the grade for {grade.version.essay.student.username}.")
    else:
        problems = "; ".join(f"{form.fields[name].label or name}: {' '.join(errors)}"
                             for name, errors in form.errors.items())
        messages.error(request, f"{grade.version.essay.student.username}: {problems}")
    target = request.POST.get("next")
    if target == "essay":
        return redirect(reverse("education:essay", args=[grade.version.essay_id]) + f"?v={grade.version.number}")
    return redirect(reverse("education:grading", args=[assignment.pk]) + f"#essay-{grade.version.essay_id}")


@role_required(STUDENT, TEACHER)
def assignment_detail(request, assignment_id: int):
    assignment = get_object_or_404(
        Assignment.objects.select_related("course__teacher")
        .filter(Q(course__students=request.user) | Q(course__teacher=request.user)).distinct(),
        pk=assignment_id,
    )
    if assignment.course.teacher_id == request.user.pk:
        return redirect("education:grading", assignment_id=assignment.pk)
    if not has_any_role(request.user, [STUDENT]):
        raise Http404
    essay = Essay.objects.filter(assignment=assignment, student=request.user).first()
    if request.method == "POST":
        form = forms.EssayForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                version = grading_services.essay_submit(assignment=assignment, student=request.user,
                                                        text=form.cleaned_data["essay_text"])
            except grading_services.GradingError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Version {version.number} submitted; its score and feedback follow "
                                          "shortly.")
                return redirect("education:essay", essay_id=version.essay_id)
        status = 400
    else:
        form, status = forms.EssayForm(initial={"text": essay.text if essay else ""}), 200
    return render(request, "education/assignment_student.html",
                  {"assignment": assignment, "course": assignment.course, "essay": essay, "form": form},
                  status=status)


@role_required(STUDENT, TEACHER)
def essay_detail(request, essay_id: int):
    essay = get_object_or_404(
        Essay.objects.select_related("assignment__course", "student")
        .filter(Q(student=request.user) | Q(assignment__course__teacher=request.user)),
        pk=essay_id,
    )
    try:
        number = int(request.GET.get("v", "")) or None
    except ValueError:
        number = None
    is_teacher = essay.assignment.course.teacher_id == request.user.pk
    page = selectors.essay_page(essay=essay, number=number)
    return render(request, "education/essay.html", {
        **page, "essay": essay, "assignment": essay.assignment, "course": essay.assignment.course,
        "is_teacher": is_teacher,
        "override_form": forms.OverrideForm(initial={"score": page["grade"].final_score}) if is_teacher
        and page.get("grade") else None,
    })
