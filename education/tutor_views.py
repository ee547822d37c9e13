"""Tutor pages: teachers add course material and read their course's sessions; students ask questions.

Only a course's teacher and its enrolled students get into its pages (anyone else: 404); a student sees only
their own sessions.
"""

from django.contrib import messages
from django.db.models import Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.middleware import wants_json
from core.roles import Role, role_required
from education.models import Course, CourseMaterial, TutorMessage, TutorSession
from education.selectors import tutor as selectors
from education.services import material as material_service
from education.services import tutor as tutor_service
from education.tutor_forms import FlagForm, MaterialForm, QuestionForm

SESSIONS_SHOWN = 50


def _member_course(user, course_id) -> Course:
    return get_object_or_404(selectors.member_courses(user=user).select_related("teacher"), pk=course_id)


def _taught_course(user, course_id) -> Course:
    return get_object_or_404(selectors.taught_courses(user=user), pk=course_id)


def _own_session(user, session_id) -> TutorSession:
    return get_object_or_404(TutorSession.objects.select_related("course"), pk=session_id, student=user,
                             course__in=selectors.member_courses(user=user))


def _own_message(user, message_id) -> TutorMessage:
    return get_object_or_404(TutorMessage.objects.select_related("session__course"), pk=message_id,
                             session__student=user, session__course__in=selectors.member_courses(user=user))


@role_required(Role.STUDENT, Role.TEACHER)
@require_GET
def home(request):
    return render(request, "education/tutor_home.html", {"courses": selectors.tutor_home_courses(user=request.user)})


def _render_course(request, course, form, status=200):
    sessions = selectors.student_sessions(course=course, student=request.user)[:SESSIONS_SHOWN]
    return render(request, "education/tutor_course.html", {
        "course": course, "form": form, "sessions": sessions, "is_teacher": course.teacher_id == request.user.pk,
        "has_material": course.materials.exists(),
    }, status=status)


@role_required(Role.STUDENT, Role.TEACHER)
@require_GET
def course(request, course_id):
    return _render_course(request, _member_course(request.user, course_id), QuestionForm())


@role_required(Role.STUDENT, Role.TEACHER)
@require_POST
def course_ask(request, course_id):
    course = _member_course(request.user, course_id)
    form = QuestionForm(request.POST)
    if not form.is_valid():
        return _render_course(request, course, form, status=400)
    try:
        tutor_service.question_check(form.cleaned_data["question"])
        tutor_service.question_rate_check(student=request.user)
    except tutor_service.QuestionError as error:
        form.add_error("question", str(error))
        return _render_course(request, course, form, status=400)
    session = tutor_service.session_start(course=course, student=request.user)
    message = tutor_service.tutor_ask(session=session, question=form.cleaned_data["question"],
                                      explain=tutor_service.Explain.LATER)
    return redirect(f"{reverse('education:tutor_session', args=[session.pk])}#message-{message.pk}")


def _render_session(request, session, form, status=200):
    is_owner = session.student_id == request.user.pk
    return render(request, "education/tutor_session.html", {
        "session": session, "course": session.course, "messages_list": selectors.session_messages(session=session),
        "form": form, "is_owner": is_owner, "flag_form": FlagForm(),
    }, status=status)


@role_required(Role.STUDENT, Role.TEACHER)
@require_GET
def session_detail(request, session_id):
    # The student who owns it, or the course's teacher (read only).
    session = get_object_or_404(
        TutorSession.objects.select_related("course", "student"),
        Q(student=request.user, course__in=selectors.member_courses(user=request.user))
        | Q(course__teacher=request.user),
        pk=session_id,
    )
    return _render_session(request, session, QuestionForm())


@role_required(Role.STUDENT, Role.TEACHER)
@require_POST
def session_ask(request, session_id):
    session = _own_session(request.user, session_id)
    form = QuestionForm(request.POST)
    if form.is_valid():
        try:
            message = tutor_service.tutor_ask(session=session, question=form.cleaned_data["question"],
                                              explain=tutor_service.Explain.LATER)
        except tutor_service.QuestionError as error:
            form.add_error("question", str(error))
        else:
            return redirect(f"{reverse('education:tutor_session', args=[session.pk])}#message-{message.pk}")
    return _render_session(request, session, form, status=400)


@role_required(Role.STUDENT, Role.TEACHER)
@require_POST
def message_reveal(request, message_id):
    message = _own_message(request.user, message_id)
    tutor_service.tutor_reveal(message=message)
    return redirect(f"{reverse('education:tutor_session', args=[message.session_id])}#message-{message.pk}")


@role_required(Role.STUDENT, Role.TEACHER)
@require_GET
def message_explain(request, message_id):
    """An answer's explanation as the ml worker writes it: JSON for the page's script to poll; a browser without
    the script is sent back to the answer, whose page says whether the explanation is still being written."""
    message = _own_message(request.user, message_id)
    if not wants_json(request):
        return redirect(f"{reverse('education:tutor_session', args=[message.session_id])}#message-{message.pk}")
    return JsonResponse(selectors.explanation_state(message))


@role_required(Role.STUDENT, Role.TEACHER)
@require_POST
def message_flag(request, message_id):
    message = _own_message(request.user, message_id)
    form = FlagForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say what is wrong with the answer to flag it.")
        return redirect(f"{reverse('education:tutor_session', args=[message.session_id])}#message-{message.pk}")
    tutor_service.tutor_flag(message=message, reason=form.cleaned_data["reason"])
    messages.success(request, "Thanks: the answer is flagged for your teacher.")
    return redirect(f"{reverse('education:tutor_session', args=[message.session_id])}#message-{message.pk}")


@role_required(Role.TEACHER)
@require_http_methods(["GET", "POST"])
def material_list(request, course_id):
    course = _taught_course(request.user, course_id)
    form = MaterialForm(request.POST, request.FILES) if request.method == "POST" else MaterialForm()
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            if data["file"]:
                material = material_service.material_upload(
                    course=course, user=request.user, title=data["title"], filename=data["file"].name,
                    data=data["file"].read())
            else:
                material = material_service.material_create(
                    course=course, user=request.user, title=data["title"], kind=data["pasted_kind"],
                    text=material_service.material_text_clean(data["text"]))
        except material_service.MaterialError as error:
            form.add_error("file" if data["file"] else "text", str(error))
        else:
            messages.success(request, f"Added “{material.title}” in {material.chunk_count} passages; "
                                      "they are being embedded for the tutor.")
            return redirect("education:tutor_material_detail", material_id=material.pk)
    return render(request, "education/tutor_material_list.html", {
        "course": course, "form": form, "materials": selectors.course_materials(course=course),
    }, status=400 if form.is_bound else 200)


@role_required(Role.STUDENT, Role.TEACHER)
@require_GET
def material_detail(request, material_id):
    material = get_object_or_404(CourseMaterial.objects.select_related("course", "uploaded_by"), pk=material_id,
                                 course__in=selectors.member_courses(user=request.user))
    chunks = list(material.chunks.defer("embedding").order_by("position"))
    highlight = None
    passage = request.GET.get("passage", "")
    if passage.isdigit():
        highlight = next((c for c in chunks if c.pk == int(passage)), None)
    return render(request, "education/tutor_material_detail.html", {
        "material": material, "course": material.course, "chunks": chunks, "highlight": highlight,
        "segments": selectors.material_document(material=material, chunks=chunks, highlight=highlight),
        "is_teacher": material.course.teacher_id == request.user.pk,
    })


@role_required(Role.TEACHER)
@require_GET
def material_state(request, material_id):
    material = get_object_or_404(CourseMaterial.objects.only("state", "error", "chunk_count"), pk=material_id,
                                 course__teacher=request.user)
    return JsonResponse({"state": material.state, "label": material.get_state_display(),
                         "chunks": material.chunk_count, "error": material.error})


@role_required(Role.TEACHER)
@require_POST
def material_retry(request, material_id):
    material = get_object_or_404(CourseMaterial, pk=material_id, course__teacher=request.user)
    if material_service.material_retry(material=material):
        messages.success(request, f"“{material.title}” is queued to be embedded again.")
    else:
        messages.info(request, f"“{material.title}” had not failed; nothing to retry.")
    return redirect("education:tutor_material_detail", material_id=material.pk)


@role_required(Role.TEACHER)
@require_POST
def material_delete(request, material_id):
    material = get_object_or_404(CourseMaterial, pk=material_id, course__teacher=request.user)
    course_id, title = material.course_id, material.title
    material_service.material_delete(material=material)
    messages.success(request, f"Removed “{title}” from the course material.")
    return redirect("education:tutor_material_list", course_id=course_id)


@role_required(Role.TEACHER)
@require_GET
def course_sessions(request, course_id):
    course = _taught_course(request.user, course_id)
    return render(request, "education/tutor_course_sessions.html", {
        "course": course, "sessions": selectors.course_sessions(course=course)[:SESSIONS_SHOWN],
        "flagged": selectors.course_flagged_messages(course=course),
    })
