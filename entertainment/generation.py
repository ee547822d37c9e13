"""Generation jobs: start (rate limit, one at a time per story or tree), run on the ml worker (claim,
build the context, stream into the row, honour cancel, mask the blocklist, write the result), cancel."""

import logging
import random
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from entertainment import context as ctx
from entertainment import services
from entertainment.models import (
    Character,
    DialogueNode,
    DialogueTree,
    GenerationJob,
    LoreEntry,
    Project,
    SegmentAlternative,
    Story,
)
from mlcore import api as ml

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 400
MAX_DIALOGUE_TOKENS = 120
MAX_CANDIDATES = 5
MAX_STOP_STRINGS = 8
FLUSH_SECONDS = 0.3
FLUSH_PIECES = 8
RECURSION_LIMIT = 2
LORE_BUDGET = 400
DIALOGUE_HISTORY = 12
RESERVE_TOKENS = 8  # the tokenizer may join a part's edges differently from the parts alone
# Longer prompts cost time to first token on CPU; like KoboldCpp, the context is capped below what the model takes.
MAX_CONTEXT_TOKENS = 2048

PRESETS = {
    "balanced": {"temperature": 0.8, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.1},
    "creative": {"temperature": 1.1, "top_p": 0.98, "top_k": 100, "repetition_penalty": 1.05},
    "precise": {"temperature": 0.4, "top_p": 0.85, "top_k": 20, "repetition_penalty": 1.15},
}


class GenerationRefused(services.StudioError):
    status = 400


class RateLimited(GenerationRefused):
    status = 429


class GenerationBusy(GenerationRefused):
    status = 409


def jobs_per_minute() -> int:
    return settings.ENTERTAINMENT_JOBS_PER_MINUTE


def sampling_clean(params: dict, *, cap: int = MAX_NEW_TOKENS) -> dict:
    """Sampler settings from a preset and the writer's values, bounded; a missing seed gets a random one."""
    preset = PRESETS.get(params.get("preset") or "balanced", PRESETS["balanced"])
    out = {"preset": params.get("preset") or "balanced", **preset}
    for name in ("temperature", "top_p", "top_k", "repetition_penalty"):
        if params.get(name) is not None:
            out[name] = params[name]
    out["temperature"] = min(max(float(out["temperature"]), 0.0), 2.0)
    out["top_p"] = min(max(float(out["top_p"]), 0.05), 1.0)
    out["top_k"] = min(max(int(out["top_k"]), 0), 200)
    out["repetition_penalty"] = min(max(float(out["repetition_penalty"]), 1.0), 2.0)
    out["max_new_tokens"] = min(max(int(params.get("max_new_tokens") or 120), 1), cap)
    seed = params.get("seed")
    out["seed"] = int(seed) if seed is not None else random.randrange(2**31)
    out["seed_random"] = seed is None  # a random seed is not offered again for the next generation
    stop = [s for s in (params.get("stop") or []) if s][:MAX_STOP_STRINGS]
    out["stop"] = [s.replace("\\n", "\n")[:50] for s in stop]
    return out


def _check_rate(owner) -> None:
    limit = jobs_per_minute()
    since = timezone.now() - timedelta(seconds=60)
    if GenerationJob.objects.filter(owner=owner, created__gte=since).count() >= limit:
        raise RateLimited(f"You can start {limit} generations a minute; wait a moment and try again.")


def _create(**fields) -> GenerationJob:
    _check_rate(fields["owner"])
    target = fields.get("story") or fields.get("tree")
    if target.jobs.filter(state__in=GenerationJob.ACTIVE_STATES).exists():
        raise GenerationBusy("A generation is already running here; wait for it or cancel it.")
    try:
        with transaction.atomic():
            job = GenerationJob.objects.create(celery_id=uuid.uuid4().hex, **fields)
            transaction.on_commit(lambda: _enqueue(job))
    except IntegrityError as exc:  # two clicks at once: the partial unique constraint keeps one
        raise GenerationBusy("A generation is already running here; wait for it or cancel it.") from exc
    return job


def _enqueue(job: GenerationJob) -> None:
    from entertainment.tasks import generate

    generate.apply_async(args=[job.pk], task_id=job.celery_id)


def story_generate(*, owner, story: Story, mode: str, params: dict) -> GenerationJob:
    """Queue a continuation (a new segment) or a regeneration (a new alternative of the last segment)."""
    if mode not in (GenerationJob.Mode.CONTINUE, GenerationJob.Mode.REGENERATE):
        raise GenerationRefused("Choose continue or regenerate.")
    if mode == GenerationJob.Mode.REGENERATE and not story.segments.exists():
        raise GenerationRefused("There is no segment to regenerate yet; continue first.")
    return _create(owner=owner, project=story.project, kind=GenerationJob.Kind.STORY, mode=mode, story=story,
                   parameters=sampling_clean(params))


def dialogue_generate(*, owner, tree: DialogueTree, character: Character, player_line: str,
                      parent: DialogueNode | None, count: int, params: dict) -> GenerationJob:
    """Queue `count` candidate replies of `character` to the player's line, each with its own seed."""
    if character.project_id != tree.project_id:
        raise GenerationRefused("That character belongs to another world.")
    if parent is not None and parent.tree_id != tree.pk:
        raise GenerationRefused("That line is not in this tree.")
    player_line = services.clean_text(player_line, "The player's line", limit=1000)
    parameters = sampling_clean(params, cap=MAX_DIALOGUE_TOKENS)
    parameters["count"] = min(max(int(count or 1), 1), MAX_CANDIDATES)
    return _create(owner=owner, project=tree.project, kind=GenerationJob.Kind.DIALOGUE,
                   mode=GenerationJob.Mode.CANDIDATES, tree=tree, character=character, parent_node=parent,
                   player_line=player_line, parameters=parameters)


def job_cancel(*, job: GenerationJob) -> bool:
    """Stop a queued or running job; the worker notices between pieces. False if it had already ended."""
    return bool(GenerationJob.objects.filter(pk=job.pk, state__in=GenerationJob.ACTIVE_STATES)
                .update(state=GenerationJob.State.CANCELLED, finished=timezone.now()))


# Recovery -------------------------------------------------------------------------------------------

QUEUED_TIMEOUT = timedelta(minutes=30)
STALE_RUNNING_ERROR = "The worker stopped while writing; the text so far is kept — generate again."
STALE_QUEUED_ERROR = "No worker took this generation up within 30 minutes; generate again."


def stale_after_default() -> timedelta:
    return timedelta(seconds=settings.ENTERTAINMENT_JOB_STALE_SECONDS)


def generation_jobs_recover(*, stale_after: timedelta | None = None,
                            queued_after: timedelta = QUEUED_TIMEOUT) -> dict:
    """Fail the jobs a lost worker left behind, so their story or tree takes a new generation again.

    A running job is stale when its last write (the heartbeat, refreshed at every flush) is older than
    `stale_after`; a queued job when no worker claimed it within `queued_after`. Each is failed by a
    conditional update, so a worker that is alive after all finds the job no longer running and stops.
    """
    stale_after = stale_after if stale_after is not None else stale_after_default()
    now = timezone.now()
    horizon = now - stale_after
    running = list(GenerationJob.objects.filter(state=GenerationJob.State.RUNNING).filter(
        Q(heartbeat__lt=horizon) | Q(heartbeat__isnull=True, started__lt=horizon)
        | Q(heartbeat__isnull=True, started__isnull=True, created__lt=horizon)).values_list("pk", "heartbeat"))
    failed_running = []
    for pk, heartbeat in running:
        # The heartbeat in the filter: a flush that lands in between keeps the job alive.
        if GenerationJob.objects.filter(pk=pk, state=GenerationJob.State.RUNNING, heartbeat=heartbeat).update(
                state=GenerationJob.State.FAILED, finished=now, error=STALE_RUNNING_ERROR):
            failed_running.append(pk)
    failed_queued = []
    for pk in GenerationJob.objects.filter(state=GenerationJob.State.QUEUED, created__lt=now - queued_after) \
            .values_list("pk", flat=True):
        if GenerationJob.objects.filter(pk=pk, state=GenerationJob.State.QUEUED).update(
                state=GenerationJob.State.FAILED, finished=now, error=STALE_QUEUED_ERROR):
            failed_queued.append(pk)
    if failed_running or failed_queued:
        log.warning("generation jobs recovered: running %s, queued %s", failed_running, failed_queued)
    return {"running": sorted(failed_running), "queued": sorted(failed_queued)}


# Blocklist ------------------------------------------------------------------------------------------


def mask(text: str, phrases: list[str]) -> str:
    """Each blocked word or phrase (whole words, any case) replaced by asterisks of the same length."""
    for phrase in sorted(phrases, key=len, reverse=True):
        pattern = ctx.key_pattern(phrase)
        if pattern:
            text = pattern.sub(lambda m: "*" * len(m.group(0)), text)
    return text


# Context --------------------------------------------------------------------------------------------


def lore_for(project: Project) -> list[ctx.Lore]:
    """The project's entries for the builder; an entry under a disabled parent counts as disabled."""
    rows = list(LoreEntry.objects.filter(project=project))
    by_id = {e.pk: e for e in rows}

    def enabled(entry):
        seen = set()
        while entry is not None and entry.pk not in seen:
            if not entry.enabled:
                return False
            seen.add(entry.pk)
            entry = by_id.get(entry.parent_id)
        return True

    return [ctx.Lore(id=e.pk, title=e.title, keys=list(e.keys), text=e.text, priority=e.priority,
                     insertion_order=e.insertion_order, enabled=enabled(e), can_trigger_others=e.can_trigger_others)
            for e in rows]


def story_memory(story: Story) -> str:
    lines = []
    if story.genre:
        lines.append(f"Genre: {story.genre}")
    if story.premise:
        lines.append(f"Premise: {story.premise}")
    if story.memory:
        lines.append(story.memory)
    return "\n".join(lines)


def persona_text(character: Character) -> str:
    fields = [("Persona", character.persona), ("Speaking style", character.speaking_style),
              ("Goals", character.goals), ("Knows", character.knowledge), ("Relationships", character.relationships)]
    return "\n".join([f"[Character: {character.name}]"] + [f"{label}: {value}" for label, value in fields if value])


def dialogue_history(node: DialogueNode | None, limit: int = DIALOGUE_HISTORY) -> list[DialogueNode]:
    """The lines leading to `node` (following the first way in), oldest first."""
    path, seen = [], set()
    while node is not None and node.pk not in seen and len(path) < limit:
        path.append(node)
        seen.add(node.pk)
        edge = node.choices_in.select_related("from_node__speaker").order_by("id").first()
        node = edge.from_node if edge else None
    return list(reversed(path))


def job_context(job: GenerationJob, *, count_tokens, context_window: int) -> ctx.BuiltContext:
    params = job.parameters
    common = dict(count_tokens=count_tokens, context_window=context_window, max_new_tokens=params["max_new_tokens"],
                  lore=lore_for(job.project), lore_budget=LORE_BUDGET, recursion_limit=RECURSION_LIMIT,
                  reserve_tokens=RESERVE_TOKENS)
    if job.kind == GenerationJob.Kind.STORY:
        story = job.story
        texts = [text for _, text in services.story_text(story=story)]
        if job.mode == GenerationJob.Mode.REGENERATE:
            texts = texts[:-1]
        return ctx.build_context(recent_text="\n\n".join(texts), memory=story_memory(story),
                                 authors_note=story.authors_note, **common)
    tree, character = job.tree, job.character
    lines = [f"{n.speaker_name}: {n.text}" for n in dialogue_history(job.parent_node)]
    lines.append(f"Player: {job.player_line}")
    return ctx.build_context(recent_text="\n".join(lines), memory=f"Scene: {tree.scene}" if tree.scene else "",
                             persona=persona_text(character), persona_name=character.name,
                             tail=f"{character.name}:", **common)


# Running --------------------------------------------------------------------------------------------


def _task(job: GenerationJob) -> str:
    return ml.Task.STORY if job.kind == GenerationJob.Kind.STORY else ml.Task.DIALOGUE


def _sampling(params: dict, **override) -> dict:
    keys = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "seed", "stop")
    return {**{k: params[k] for k in keys if k in params}, **override}


class _Stream:
    """Streams one generation into the job row; `run` returns the text, or None once the job was cancelled."""

    def __init__(self, job: GenerationJob, blocked: list[str], tokens_before: int = 0):
        self.job, self.blocked, self.tokens_before = job, blocked, tokens_before
        self.task = _task(job)
        self.started = time.monotonic()
        self.tokens = 0

    def flush(self, text: str) -> bool:
        self.tokens = ml.count_tokens(self.task, [text])[0] if text else 0
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return bool(GenerationJob.objects.filter(pk=self.job.pk, state=GenerationJob.State.RUNNING).update(
            text=mask(text, self.blocked), tokens=self.tokens_before + self.tokens,
            tokens_per_second=round(self.tokens / elapsed, 2), heartbeat=timezone.now()))

    def run(self, prompt: str, sampling: dict) -> str | None:
        project = self.job.project
        # A style adapter is trained on stories only; NPC replies keep the instruction-following base model.
        scope = project.scope if project.use_style and self.job.kind == GenerationJob.Kind.STORY else ""
        pieces = ml.generate(self.task, prompt, scope=scope, chat=False, **sampling)
        text, count, last = "", 0, time.monotonic()
        try:
            for piece in pieces:
                text += piece
                count += 1
                if count % FLUSH_PIECES == 0 or time.monotonic() - last >= FLUSH_SECONDS:
                    if not self.flush(text):
                        return None
                    last = time.monotonic()
        finally:
            pieces.close()  # halts the model at its next token when we stop early
        return text if self.flush(text) else None


def _finish(job_id: int, **fields) -> bool:
    return bool(GenerationJob.objects.filter(pk=job_id, state=GenerationJob.State.RUNNING).update(
        finished=timezone.now(), **fields))


def generation_run(*, job_id: int) -> str:
    """Run a queued job once (a redelivered task finds it claimed and does nothing); returns its end state."""
    now = timezone.now()
    claimed = GenerationJob.objects.filter(pk=job_id, state=GenerationJob.State.QUEUED).update(
        state=GenerationJob.State.RUNNING, started=now, heartbeat=now)
    if not claimed:
        return "skipped"
    job = GenerationJob.objects.select_related("project", "story", "tree", "character", "parent_node").get(pk=job_id)
    task = _task(job)
    try:
        built = job_context(job, count_tokens=lambda texts: ml.count_tokens(task, texts),
                            context_window=min(ml.context_window(task), MAX_CONTEXT_TOKENS))
        GenerationJob.objects.filter(pk=job.pk).update(
            context={"prompt": built.prompt, "prompt_tokens": built.prompt_tokens,
                     "available_tokens": built.available_tokens, "task": task, "sampling": _sampling(job.parameters)},
            context_report=built.report(), heartbeat=timezone.now())
        blocked = job.project.blocked_phrases()
        if job.kind == GenerationJob.Kind.STORY:
            return _run_story(job, built.prompt, blocked)
        return _run_dialogue(job, built.prompt, blocked)
    except (ctx.ContextError, ml.NoActiveVersion, ml.ModelNotReady, services.StudioError) as exc:
        _finish(job.pk, state=GenerationJob.State.FAILED, error=str(getattr(exc, "message", exc)))
        return GenerationJob.State.FAILED
    except Exception as exc:
        log.exception("generation job %s failed", job.pk)
        _finish(job.pk, state=GenerationJob.State.FAILED, error=f"The generation failed: {exc}")
        return GenerationJob.State.FAILED


def _run_story(job: GenerationJob, prompt: str, blocked: list[str]) -> str:
    text = _Stream(job, blocked).run(prompt, _sampling(job.parameters))
    if text is None:
        return GenerationJob.State.CANCELLED
    final = mask(text.strip(), blocked)
    if not final:
        _finish(job.pk, state=GenerationJob.State.FAILED,
                error="The model wrote nothing; try another seed or a higher temperature.")
        return GenerationJob.State.FAILED
    with transaction.atomic():
        if not _finish(job.pk, state=GenerationJob.State.DONE, text=final):
            return GenerationJob.State.CANCELLED
        story = Story.objects.get(pk=job.story_id)
        last = story.segments.order_by("-position").first()
        if job.mode == GenerationJob.Mode.REGENERATE and last is not None:
            services.alternative_add(segment=last, text=final, source=SegmentAlternative.Source.GENERATED, job=job)
        else:
            services.segment_append(story=story, text=final, source=SegmentAlternative.Source.GENERATED, job=job)
    return GenerationJob.State.DONE


def _clean_reply(text: str, name: str) -> str:
    """The reply's first non-empty line, without a leading "Name:" the model may have repeated."""
    lines = [line.strip() for line in text.split("\nPlayer:")[0].splitlines() if line.strip()]
    reply = lines[0] if lines else ""
    if reply.lower().startswith(name.lower() + ":"):
        reply = reply[len(name) + 1:].strip()
    return reply


def _run_dialogue(job: GenerationJob, prompt: str, blocked: list[str]) -> str:
    params = job.parameters
    stop = list(dict.fromkeys([*params.get("stop", []), "\nPlayer:", "\n\n"]))
    candidates, tokens = [], 0
    for i in range(params.get("count", 1)):
        stream = _Stream(job, blocked, tokens_before=tokens)
        text = stream.run(prompt, _sampling(params, seed=params["seed"] + i, stop=stop))
        if text is None:
            return GenerationJob.State.CANCELLED
        tokens += stream.tokens
        reply = mask(_clean_reply(text, job.character.name), blocked)
        if reply:
            candidates.append(reply)
        if not GenerationJob.objects.filter(pk=job.pk, state=GenerationJob.State.RUNNING).update(
                candidates=candidates, heartbeat=timezone.now()):
            return GenerationJob.State.CANCELLED
    if not candidates:
        _finish(job.pk, state=GenerationJob.State.FAILED,
                error="The model wrote no reply; try another seed or a higher temperature.")
        return GenerationJob.State.FAILED
    _finish(job.pk, state=GenerationJob.State.DONE, text="")
    return GenerationJob.State.DONE


@transaction.atomic
def candidate_accept(*, job: GenerationJob, index: int, text: str | None = None) -> DialogueNode:
    """Add the player's line and the chosen reply to the tree: (parent →) player line → reply."""
    if job.kind != GenerationJob.Kind.DIALOGUE or job.state != GenerationJob.State.DONE:
        raise GenerationRefused("Only a finished dialogue job has replies to accept.")
    job = (GenerationJob.objects.select_for_update(of=("self",)).select_related("tree", "character", "parent_node")
           .get(pk=job.pk))
    if job.accepted_node_id:
        raise GenerationRefused("A reply from this request is in the tree already; ask again for another exchange.")
    if not 0 <= index < len(job.candidates):
        raise GenerationRefused("There is no such reply.")
    reply = text if text is not None and text.strip() else job.candidates[index]
    tree = job.tree
    parent = job.parent_node
    if parent is None:
        parent = tree.nodes.filter(is_root=True).first()
        if parent is not None:
            # With no line chosen, the exchange hangs from the latest line that leads nowhere yet.
            parent = tree.nodes.filter(choices_out__isnull=True).order_by("-id").first() or parent
    player = services.node_add(tree=tree, speaker=None, text=job.player_line, parent=parent,
                               choice_text=job.player_line if parent is not None else "")
    node = services.node_add(tree=tree, speaker=job.character, text=reply, parent=player)
    GenerationJob.objects.filter(pk=job.pk).update(accepted_node=node)
    return node
