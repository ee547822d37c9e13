"""The public face of mlcore: the only module the domain apps import. No torch types cross it.

Each call uses the task's active model version (per scope where a task has scopes, such as one
essay scorer per assignment). Small calls run in the calling process with the shared model
cache; bulk work belongs on the `ml` queue.
"""

import hashlib
from collections.abc import Iterator

from django.core.cache import cache

from mlcore import specs
from mlcore.models import Family, ModelVersion, Task, TrainingJob
from mlcore.selectors import NoActiveVersion, active_version, dataset_rows
from mlcore.services import RegistryError, dataset_create, finetune_run, finetune_start, model_version_activate
from mlcore.specs import ModelNotReady

__all__ = [
    "ModelNotReady", "NoActiveVersion", "RegistryError", "Task",
    "predict", "score", "embed", "embed_with_middle", "generate", "start_finetune", "finetune_now", "evaluate",
    "version_path", "active_version", "dataset_create", "dataset_rows", "activate", "count_tokens", "context_window",
    "likelihood", "read_middle",
]


def activate(version: ModelVersion) -> ModelVersion:
    """Make `version` its task's active version (see mlcore.services.model_version_activate)."""
    return model_version_activate(version=version)


def version_path(version: ModelVersion) -> str:
    """Where a version's weights are: its trained artifact, or its base model."""
    if version.artifact_path:
        return str(specs.artifact_dir(version.artifact_path))
    return specs.resolve(version.base_spec)


def _checked(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not a single string")
    return [str(t) for t in texts]


def predict(task: str, texts: list[str], *, scope: str = "", version: ModelVersion | None = None) -> list[dict]:
    """`{"label", "scores": {label: probability}}` per text, in input order.

    `version` pins the model (e.g. the one whose id the caller stores with the results); by
    default the task's active version is used.
    """
    from mlcore import runtime

    texts = _checked(texts)
    if not texts:
        return []
    return runtime.classify(version_path(version or active_version(task=task, scope=scope)), texts)


def score(task: str, texts: list[str], *, scope: str = "") -> list[float]:
    """One number per text from the task's regressor (e.g. an essay score), in input order."""
    from mlcore import runtime

    texts = _checked(texts)
    if not texts:
        return []
    return runtime.regress(version_path(active_version(task=task, scope=scope)), texts)


def embed(texts: list[str]) -> list[list[float]]:
    """Unit-length sentence embeddings (mean pooling), in input order."""
    from mlcore import runtime

    texts = _checked(texts)
    if not texts:
        return []
    return runtime.embed(_embedder_path(), texts)


def embed_with_middle(texts: list[str]) -> tuple[list[list[float]], list[list[float]]]:
    """`embed`'s vectors and the embedding model's middle layer mean-pooled (unit length), from one pass."""
    from mlcore import runtime

    texts = _checked(texts)
    if not texts:
        return [], []
    return runtime.embed_with_middle(_embedder_path(), texts)


def read_middle(texts: list[str], *, version: ModelVersion, max_length: int) -> list[list[float]]:
    """A causal language model's middle layer mean-pooled over each text's first `max_length` tokens (unit length),
    in input order: how a text is written as well as what it says (the essay scorer reads it beside `embed`'s).
    Half the model runs (mlcore.runtime.decoder_middle). `version` pins the model a caller read with before."""
    from mlcore import runtime

    texts = _checked(texts)
    if not texts:
        return []
    return runtime.decoder_middle(version_path(version), texts, max_length=max_length)


def _embedder_path() -> str:
    try:
        return version_path(active_version(task=Task.EMBED))
    except NoActiveVersion:
        return specs.resolve(specs.encoder_spec())


def warm_up(*, lm_tasks: tuple[str, ...] = ()) -> None:
    """Load what a web process serves on its first request: the embedding model that reads students' questions
    (and searches news), and the language model of each of `lm_tasks` that has an active version (the tutor's,
    which breaks close calls between passages). Without it the first question after a restart waits for the load."""
    embed(["warm up"])
    for task in lm_tasks:
        try:
            likelihood(task, ["warm"], [" up"])
        except NoActiveVersion:
            continue


def generate(task: str, prompt: str, *, scope: str = "", system: str | None = None, **sampling) -> Iterator[str]:
    """Text pieces as the task's language model produces them.

    With a `scope` (e.g. a writer's project) that has an active LoRA adapter, the adapter is applied.
    Sampling: temperature, top_p, top_k, repetition_penalty, max_new_tokens, seed, stop (list of strings).
    """
    from mlcore import runtime

    version = active_version(task=task)
    adapter = None
    if scope:
        try:
            adapter_version = active_version(task=task, scope=scope)
        except NoActiveVersion:
            adapter_version = None
        if adapter_version is not None and adapter_version.family == Family.LORA_ADAPTER:
            adapter = str(specs.artifact_dir(adapter_version.artifact_path))
    return runtime.generate(version_path(version), prompt, adapter=adapter, system=system, **sampling)


LIKELIHOOD_CACHE_SECONDS = 24 * 3600


def likelihood(task: str, contexts: list[str], continuations: list[str]) -> list[float]:
    """How likely the task's language model finds each continuation after its context: the mean log-probability
    per token (higher is likelier; comparable between contexts for the same continuation), in input order.

    A figure depends only on the model version and the two texts, so each is kept in the default cache for a day
    (shared between processes with DJANGO_CACHE_URL): a class asking the same question pays for it once.
    """
    from mlcore import runtime

    contexts, continuations = _checked(contexts), _checked(continuations)
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts for {len(continuations)} continuations")
    if not contexts:
        return []
    version = active_version(task=task)
    path = version_path(version)
    pairs = list(zip(contexts, continuations, strict=True))
    keys = [_likelihood_key(version, path, context, continuation) for context, continuation in pairs]
    known = cache.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in known]
    if missing:
        values = runtime.continuation_logprobs(path, [pairs[i] for i in missing])
        fresh = {keys[i]: value for i, value in zip(missing, values, strict=True)}
        cache.set_many(fresh, LIKELIHOOD_CACHE_SECONDS)
        known.update(fresh)
    return [known[key] for key in keys]


def _likelihood_key(version: ModelVersion, path: str, context: str, continuation: str) -> str:
    digest = hashlib.sha256("\0".join((path, context, continuation)).encode()).hexdigest()
    return f"mlcore:likelihood:{version.pk}:{digest}"


def start_finetune(task: str, dataset, **params) -> TrainingJob:
    """Queue a fine-tune on the `ml` workers; returns the job to poll. `scope=` and `user=` may be passed."""
    scope = params.pop("scope", "")
    user = params.pop("user", None)
    return finetune_start(task=task, dataset=dataset, params=params, scope=scope, user=user)


def _lm_report(version: ModelVersion, rows: list[dict]) -> dict:
    from mlcore import runtime

    texts = [r["text"] for r in rows]
    if version.family == Family.LORA_ADAPTER:
        base = specs.resolve(version.base_spec)
        return {"perplexity": runtime.perplexity(base, texts, adapter=version_path(version)), "n": len(texts)}
    return {"perplexity": runtime.perplexity(version_path(version), texts), "n": len(texts)}


def finetune_now(task: str, dataset, **params) -> TrainingJob:
    """Train in this process (set-up commands, before any worker runs); returns the finished job."""
    scope = params.pop("scope", "")
    job = finetune_start(task=task, dataset=dataset, params=params, scope=scope, enqueue=False)
    finetune_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    return job


def evaluate(version: ModelVersion, dataset, *, split: str | None = "test", progress=None) -> dict:
    """Metrics of `version` on one split of `dataset` (None: every row).

    Accuracy + macro-F1 for classifiers; RMSE + Pearson + QWK for regressors. `progress(done, total)`
    is called as batches finish.
    """
    from mlcore import metrics, runtime

    rows = dataset_rows(dataset=dataset, split=split)
    if not rows:
        raise RegistryError(f"{dataset.name!r} has no rows in its {split or 'any'} split.")
    if version.family == Family.CLASSIFIER:
        run = lambda chunk: [p["label"] for p in runtime.classify(path, chunk)]  # noqa: E731
    elif version.family == Family.REGRESSOR:
        run = lambda chunk: runtime.regress(path, chunk)  # noqa: E731
    elif version.family in (Family.CAUSAL_LM, Family.LORA_ADAPTER):
        return {**_lm_report(version, rows), "dataset": dataset.name, "dataset_id": dataset.pk, "split": split or "all"}
    else:
        raise RegistryError(f"Evaluating a {version.get_family_display().lower()} is not available yet.")
    path = version_path(version)
    texts, pred = [r["text"] for r in rows], []
    for start in range(0, len(texts), 256):
        pred.extend(run(texts[start : start + 256]))
        if progress:
            progress(len(pred), len(texts))
    if version.family == Family.CLASSIFIER:
        labels = version.label_map or sorted({r["label"] for r in rows})
        report = metrics.classification_report([r["label"] for r in rows], pred, labels)
    else:
        report = metrics.regression_report([float(r["target"]) for r in rows], pred)
    return {**report, "dataset": dataset.name, "dataset_id": dataset.pk, "split": split or "all"}


def count_tokens(task: str, texts: list[str]) -> list[int]:
    """Tokens per text under the tokenizer of the task's active model, in input order."""
    from mlcore import runtime

    texts = _checked(texts)
    if not texts:
        return []
    return runtime.count_tokens(version_path(active_version(task=task)), texts)


def context_window(task: str) -> int:
    """How many tokens (prompt plus generated) the task's active model takes at most."""
    from mlcore import runtime

    return runtime.context_window(version_path(active_version(task=task)))
