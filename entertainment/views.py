"""Writer pages: worlds, lore, characters, stories with streamed generation, dialogue trees and exports."""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required
from entertainment import exports, forms, generation, selectors, services, style
from entertainment.models import SegmentAlternative


def _refused(request, message, *, status: int = 400, back: str = ""):
    """One page for every refused request: the reason, a way back, and a 4xx status."""
    return render(request, "entertainment/refused.html", {"message": message, "back": back}, status=status)


def _form_errors(form) -> str:
    return " ".join(f"{'' if name == '__all__' else form.fields[name].label or name}: {' '.join(errors)}".strip(": ")
                    for name, errors in form.errors.items())


def _message(exc) -> str:
    return " ".join(exc.messages)


# Worlds -------------------------------------------------------------------------------------------


@role_required(Role.WRITER)
@require_http_methods(["GET", "POST"])
def index(request):
    form = forms.ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(owner=request.user, **form.cleaned_data)
        except services.StudioError as exc:
            form.add_error("title", _message(exc))
        else:
            return redirect("entertainment:project", project.pk)
    projects = selectors.projects_for(user=request.user)
    return render(request, "entertainment/index.html", {"projects": projects, "form": form},
                  status=400 if form.is_bound and form.errors else 200)


@role_required(Role.WRITER)
@require_GET
def project(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    return render(request, "entertainment/project.html", {
        "project": project, **selectors.project_overview(project=project),
        "story_form": forms.StoryForm(auto_id="story_%s"),
        "tree_form": forms.TreeForm(project=project, auto_id="tree_%s"),
        "blocklist_form": forms.BlocklistForm(initial={"blocklist": project.blocklist}),
        "style_form": forms.StyleUploadForm(), "style": style.style_status(project),
    })


@role_required(Role.WRITER)
@require_POST
def style_upload(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    form = forms.StyleUploadForm(request.POST, request.FILES)
    back = reverse("entertainment:project", args=[project.pk]) + "#style"
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=back)
    upload = form.cleaned_data["corpus"]
    try:
        style.style_train_start(project=project, user=request.user, data=upload.read(), filename=upload.name,
                                epochs=form.cleaned_data["epochs"])
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    messages.success(request, "The corpus is cleaned and the style fine-tune is queued.")
    return redirect(back)


@role_required(Role.WRITER)
@require_POST
def style_use(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    back = reverse("entertainment:project", args=[project.pk]) + "#style"
    try:
        style.style_use(project=project, use=request.POST.get("use") == "1")
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    return redirect(back)


@role_required(Role.WRITER)
@require_GET
def style_status(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    return JsonResponse(style.style_status(project) or {"state": None, "active": False})


@role_required(Role.WRITER)
@require_POST
def blocklist_save(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    form = forms.BlocklistForm(request.POST)
    back = reverse("entertainment:project", args=[project.pk])
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=back)
    try:
        services.project_blocklist_save(project=project, blocklist=form.cleaned_data["blocklist"])
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    messages.success(request, "Blocklist saved.")
    return redirect(back)


# Lore and characters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WorldPart:
    """What differs between a world's lore entries and its characters; their edit and delete flows are shared."""

    kind: str  # as the edit page names it
    section: str  # the world page's anchor to go back to
    delete_url: str
    form: Callable  # (data, project, obj) -> the form, filled from obj when editing
    save: Callable  # (project, obj, fields): the service that creates or updates one
    delete: Callable  # (obj): the service that deletes one, raising StudioError to refuse
    saved: str
    deleted: Callable  # (obj) -> the message after a delete


def _lore_form(data, project, entry):
    initial = None
    if entry is not None:
        initial = {"title": entry.title, "keys": ", ".join(entry.keys), "text": entry.text, "priority": entry.priority,
                   "enabled": entry.enabled, "can_trigger_others": entry.can_trigger_others, "parent": entry.parent}
    return forms.LoreEntryForm(data, project=project, entry=entry, initial=initial)


_LORE = _WorldPart(
    kind="lore entry", section="#lore", delete_url="entertainment:lore_delete", form=_lore_form,
    save=lambda project, entry, fields: services.lore_entry_save(project=project, entry=entry, **fields),
    delete=lambda entry: services.lore_entry_delete(entry=entry),
    saved="Lore entry saved.", deleted=lambda entry: f"Deleted “{entry.title}” and the entries under it.",
)
_CHARACTER = _WorldPart(
    kind="character", section="#characters", delete_url="entertainment:character_delete",
    form=lambda data, project, character: forms.CharacterForm(data, instance=character),
    save=lambda project, character, fields: services.character_save(project=project, character=character, **fields),
    delete=lambda character: services.character_delete(character=character),
    saved="Character saved.", deleted=lambda character: f"Deleted {character.name}.",
)


def _part_form_page(request, part: _WorldPart, project, obj):
    form = part.form(request.POST or None, project, obj)
    if request.method == "POST" and form.is_valid():
        try:
            part.save(project, obj, form.cleaned_data)
        except services.StudioError as exc:
            form.add_error(None, _message(exc))
        else:
            messages.success(request, part.saved)
            return redirect(reverse("entertainment:project", args=[project.pk]) + part.section)
    return render(request, "entertainment/edit.html", {
        "project": project, "form": form, "object": obj, "kind": part.kind,
        "delete_url": reverse(part.delete_url, args=[obj.pk]) if obj else "",
    }, status=400 if form.is_bound and form.errors else 200)


def _part_delete(request, part: _WorldPart, obj):
    back = reverse("entertainment:project", args=[obj.project_id])
    try:
        part.delete(obj)
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    messages.success(request, part.deleted(obj))
    return redirect(back + part.section)


@role_required(Role.WRITER)
@require_http_methods(["GET", "POST"])
def lore_new(request, pk):
    return _part_form_page(request, _LORE, selectors.project_get(user=request.user, pk=pk), None)


@role_required(Role.WRITER)
@require_http_methods(["GET", "POST"])
def lore_edit(request, pk):
    entry = selectors.lore_get(user=request.user, pk=pk)
    return _part_form_page(request, _LORE, entry.project, entry)


@role_required(Role.WRITER)
@require_POST
def lore_delete(request, pk):
    return _part_delete(request, _LORE, selectors.lore_get(user=request.user, pk=pk))


@role_required(Role.WRITER)
@require_http_methods(["GET", "POST"])
def character_new(request, pk):
    return _part_form_page(request, _CHARACTER, selectors.project_get(user=request.user, pk=pk), None)


@role_required(Role.WRITER)
@require_http_methods(["GET", "POST"])
def character_edit(request, pk):
    character = selectors.character_get(user=request.user, pk=pk)
    return _part_form_page(request, _CHARACTER, character.project, character)


@role_required(Role.WRITER)
@require_POST
def character_delete(request, pk):
    return _part_delete(request, _CHARACTER, selectors.character_get(user=request.user, pk=pk))


# Stories ------------------------------------------------------------------------------------------


@role_required(Role.WRITER)
@require_POST
def story_new(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    form = forms.StoryForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=reverse("entertainment:project", args=[project.pk]))
    story = services.story_save(project=project, **form.cleaned_data)
    return redirect("entertainment:story", story.pk)


def _last_sampling(job) -> dict:
    """The previous generation's settings as the form's starting values (a random seed is not repeated)."""
    if job is None:
        return {}
    params = {k: v for k, v in job.parameters.items() if k != "stop"}
    if params.pop("seed_random", False):
        params.pop("seed", None)
    return {**params, "stop": "\n".join(job.parameters.get("stop", []))}


def _story_page(request, story, *, status=200, settings_form=None, generate_form=None):
    job = selectors.latest_job(owner=request.user, story=story)
    return render(request, "entertainment/story.html", {
        "story": story, "project": story.project, "segments": selectors.story_segments(story=story), "job": job,
        "settings_form": settings_form or forms.StoryForm(initial={
            f: getattr(story, f) for f in ("title", "genre", "premise", "memory", "authors_note")}),
        "generate_form": generate_form or forms.StoryGenerateForm(initial=_last_sampling(job)),
        "append_form": forms.TextForm(), "presets": generation.PRESETS,
    }, status=status)


@role_required(Role.WRITER)
@require_http_methods(["GET", "POST"])
def story(request, pk):
    story = selectors.story_get(user=request.user, pk=pk)
    if request.method == "POST":
        form = forms.StoryForm(request.POST)
        if not form.is_valid():
            return _story_page(request, story, status=400, settings_form=form)
        services.story_save(project=story.project, story=story, **form.cleaned_data)
        messages.success(request, "Story settings saved.")
        return redirect("entertainment:story", story.pk)
    return _story_page(request, story)


@role_required(Role.WRITER)
@require_POST
def story_generate(request, pk):
    story = selectors.story_get(user=request.user, pk=pk)
    form = forms.StoryGenerateForm(request.POST)
    if not form.is_valid():
        return _story_page(request, story, status=400, generate_form=form)
    params = dict(form.cleaned_data)
    mode = params.pop("mode")
    try:
        generation.story_generate(owner=request.user, story=story, mode=mode, params=params)
    except generation.GenerationRefused as exc:
        return _refused(request, _message(exc), status=exc.status,
                        back=reverse("entertainment:story", args=[story.pk]))
    return redirect(reverse("entertainment:story", args=[story.pk]) + "#job")


@role_required(Role.WRITER)
@require_POST
def story_append(request, pk):
    story = selectors.story_get(user=request.user, pk=pk)
    form = forms.TextForm(request.POST)
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=reverse("entertainment:story", args=[story.pk]))
    services.segment_append(story=story, text=form.cleaned_data["text"], source=SegmentAlternative.Source.TYPED)
    return redirect(reverse("entertainment:story", args=[story.pk]) + "#end")


@role_required(Role.WRITER)
@require_POST
def story_undo(request, pk):
    story = selectors.story_get(user=request.user, pk=pk)
    if not services.story_undo(story=story):
        messages.warning(request, "There is nothing to undo.")
    return redirect(reverse("entertainment:story", args=[story.pk]) + "#end")


@role_required(Role.WRITER)
@require_GET
def story_export(request, pk, fmt):
    story = selectors.story_get(user=request.user, pk=pk)
    body, ext = (exports.story_markdown(story), "md") if fmt == "md" else (exports.story_plain(story), "txt")
    response = HttpResponse(body, content_type="text/markdown; charset=utf-8" if fmt == "md"
                            else "text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="story-{story.pk}.{ext}"'
    return response


@role_required(Role.WRITER)
@require_POST
def segment_swipe(request, pk):
    segment = selectors.segment_get(user=request.user, pk=pk)
    services.segment_swipe(segment=segment, step=1 if request.POST.get("direction") == "next" else -1)
    return redirect(reverse("entertainment:story", args=[segment.story_id]) + f"#segment-{segment.pk}")


@role_required(Role.WRITER)
@require_POST
def segment_edit(request, pk):
    segment = selectors.segment_get(user=request.user, pk=pk)
    form = forms.TextForm(request.POST)
    back = reverse("entertainment:story", args=[segment.story_id])
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=back)
    services.segment_edit(segment=segment, text=form.cleaned_data["text"])
    return redirect(back + f"#segment-{segment.pk}")


# Jobs ---------------------------------------------------------------------------------------------


@role_required(Role.WRITER)
@require_GET
def job_status(request, pk):
    return JsonResponse(selectors.job_status(selectors.job_get(user=request.user, pk=pk)))


@role_required(Role.WRITER)
@require_POST
def job_cancel(request, pk):
    job = selectors.job_get(user=request.user, pk=pk)
    if not generation.job_cancel(job=job):
        messages.warning(request, "That generation had already ended.")
    target = reverse("entertainment:story", args=[job.story_id]) if job.story_id else \
        reverse("entertainment:tree", args=[job.tree_id])
    if request.headers.get("Accept") == "application/json":
        job.refresh_from_db()
        return JsonResponse(selectors.job_status(job))
    return redirect(target + "#job")


# Dialogue -----------------------------------------------------------------------------------------


@role_required(Role.WRITER)
@require_POST
def tree_new(request, pk):
    project = selectors.project_get(user=request.user, pk=pk)
    form = forms.TreeForm(request.POST, project=project)
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=reverse("entertainment:project", args=[project.pk]))
    tree = services.tree_save(project=project, **form.cleaned_data)
    return redirect("entertainment:tree", tree.pk)


def _tree_page(request, tree, *, status=200, generate_form=None, node_form=None):
    outline, orphans = services.tree_outline(tree=tree)
    job = selectors.latest_job(owner=request.user, tree=tree)
    last = tree.nodes.order_by("-id").first()
    return render(request, "entertainment/tree.html", {
        "tree": tree, "project": tree.project, "outline": outline, "orphans": orphans, "job": job,
        "generate_form": generate_form or forms.DialogueGenerateForm(
            tree=tree, initial={"parent": last.pk if last else None, "count": 3, "max_new_tokens": 60}),
        "node_form": node_form or forms.NodeForm(tree=tree, auto_id="line_%s",
                                                 initial={"parent": last.pk if last else None}),
        "choice_form": forms.ChoiceForm(), "presets": generation.PRESETS,
    }, status=status)


@role_required(Role.WRITER)
@require_GET
def tree(request, pk):
    return _tree_page(request, selectors.tree_get(user=request.user, pk=pk))


def _node_or_none(tree, pk):
    if pk is None:
        return None
    node = tree.nodes.filter(pk=pk).first()
    if node is None:
        raise services.StudioError("That line is not in this tree.")
    return node


@role_required(Role.WRITER)
@require_POST
def tree_generate(request, pk):
    tree = selectors.tree_get(user=request.user, pk=pk)
    form = forms.DialogueGenerateForm(request.POST, tree=tree)
    if not form.is_valid():
        return _tree_page(request, tree, status=400, generate_form=form)
    params = dict(form.cleaned_data)
    back = reverse("entertainment:tree", args=[tree.pk])
    try:
        generation.dialogue_generate(
            owner=request.user, tree=tree, character=params.pop("character"), player_line=params.pop("player_line"),
            parent=_node_or_none(tree, params.pop("parent")), count=params.pop("count"), params=params)
    except generation.GenerationRefused as exc:
        return _refused(request, _message(exc), status=exc.status, back=back)
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    return redirect(back + "#job")


@role_required(Role.WRITER)
@require_POST
def candidate_accept(request, pk):
    job = selectors.job_get(user=request.user, pk=pk)
    back = reverse("entertainment:tree", args=[job.tree_id]) if job.tree_id else reverse("entertainment:index")
    try:
        index = int(request.POST.get("index", ""))
        generation.candidate_accept(job=job, index=index, text=request.POST.get("text"))
    except ValueError:
        return _refused(request, "Choose one of the replies.", back=back)
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    messages.success(request, "Added the exchange to the tree.")
    return redirect(back + "#outline")


@role_required(Role.WRITER)
@require_POST
def node_add(request, pk):
    tree = selectors.tree_get(user=request.user, pk=pk)
    form = forms.NodeForm(request.POST, tree=tree, auto_id="line_%s")
    if not form.is_valid():
        return _tree_page(request, tree, status=400, node_form=form)
    data = form.cleaned_data
    back = reverse("entertainment:tree", args=[tree.pk])
    try:
        speaker = tree.project.characters.filter(pk=data["speaker"]).first() if data["speaker"] else None
        services.node_add(tree=tree, speaker=speaker, text=data["text"], parent=_node_or_none(tree, data["parent"]),
                          choice_text=data["choice_text"], condition=data["condition"])
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    return redirect(back + "#outline")


@role_required(Role.WRITER)
@require_POST
def choice_add(request, pk):
    tree = selectors.tree_get(user=request.user, pk=pk)
    form = forms.ChoiceForm(request.POST)
    back = reverse("entertainment:tree", args=[tree.pk])
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=back)
    data = form.cleaned_data
    try:
        services.choice_add(tree=tree, from_node=_node_or_none(tree, data["from_node"]),
                            to_node=_node_or_none(tree, data["to_node"]), text=data["text"],
                            condition=data["condition"])
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    return redirect(back + "#outline")


@role_required(Role.WRITER)
@require_POST
def node_edit(request, pk):
    node = selectors.node_get(user=request.user, pk=pk)
    form = forms.TextForm(request.POST)
    back = reverse("entertainment:tree", args=[node.tree_id])
    if not form.is_valid():
        return _refused(request, _form_errors(form), back=back)
    try:
        services.node_edit(node=node, text=form.cleaned_data["text"])
    except services.StudioError as exc:
        return _refused(request, _message(exc), back=back)
    return redirect(back + f"#node-{node.pk}")


@role_required(Role.WRITER)
@require_POST
def node_delete(request, pk):
    node = selectors.node_get(user=request.user, pk=pk)
    services.node_delete(node=node)
    return redirect(reverse("entertainment:tree", args=[node.tree_id]) + "#outline")


@role_required(Role.WRITER)
@require_POST
def choice_delete(request, pk):
    choice = selectors.choice_get(user=request.user, pk=pk)
    services.choice_delete(choice=choice)
    return redirect(reverse("entertainment:tree", args=[choice.tree_id]) + "#outline")


@role_required(Role.WRITER)
@require_GET
def tree_export(request, pk, fmt):
    tree = selectors.tree_get(user=request.user, pk=pk)
    render_tree, content_type, ext = exports.EXPORTS[fmt]
    response = HttpResponse(render_tree(tree), content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{exports.tree_filename(tree)}.{ext}"'
    return response
