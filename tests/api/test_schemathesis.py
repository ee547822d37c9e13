"""Schemathesis against the OpenAPI schema the running app serves: every operation under /api/v1/, called as a user
holding every role, with seeded objects so the detail endpoints find something. No 5xx, and every response matches
the schema (status code, content type, body).

The app is called in-process through its WSGI handler, inside the test's database transaction, so the fuzzing never
leaves the test database. Work the endpoints start (training, generation, scoring) is handed to Celery on commit,
which never comes inside the test transaction: nothing is queued and no model is loaded.

Reproducible: a fixed seed, Hypothesis derandomised and without its example database, a bounded number of examples.
"""

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from core.roles import Role
from core.wsgi import application

MAX_EXAMPLES = 15
SEED = 20261129
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CONFIG = {
    "seed": SEED,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
}

NEWS = [
    {"title": "Acme profit rose on record sales", "body": "ACME shares jumped.", "url": "https://news.example/1",
     "published_at": "2026-11-02T09:30:00Z"},
    {"title": "Globex revenue missed forecasts", "body": "", "url": "", "published_at": "2026-11-03"},
]
CLASSIFICATION_CSV = "text,label\n" + "".join(
    f"{text},{label}\n" for label, texts in (
        ("positive", ["profit rose sharply", "shares jumped on results", "record sales reported", "dividend raised"]),
        ("negative", ["loss widened badly", "shares slumped hard", "weak sales this quarter", "dividend cut"]),
    ) for text in texts
)


@pytest.fixture
def in_test_transaction(db):
    """Keep the test's connection open across requests, as Django's test client does: the handler would close it
    at the end of every request (it is inside a transaction), which the next query would find closed."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(in_test_transaction, make_user, mlcore_home):
    """A user with every role, and one object of each kind the detail endpoints look up, owned by that user."""
    from entertainment import generation
    from entertainment import services as studio
    from entertainment.models import GenerationJob, Project
    from finance import services as finance
    from mlcore import services as ml
    from mlcore.models import Family, Task

    user = make_user(*Role, username="fuzzer")
    run = finance.articles_push(source_name="Fuzz wire", user=user, articles=[dict(a) for a in NEWS])
    dataset = ml.dataset_create(name="fuzz sentiment", kind="classification", data=CLASSIFICATION_CSV.encode(),
                                filename="fuzz.csv")
    version = ml.model_version_register(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER,
                                        base_spec="package:minilm", name="fuzz")
    job = ml.finetune_start(task=Task.FINANCE_SENTIMENT, dataset=dataset, user=user, enqueue=False)
    world = Project.objects.create(owner=user, title="Gull Rock", description="A lighthouse island.")
    maren = studio.character_save(project=world, name="Maren", persona="The keeper.", speaking_style="Short.",
                                  knowledge="The lamp.")
    story = studio.story_save(project=world, title="The Dark Lamp", genre="mystery", premise="The lamp goes dark.")
    studio.segment_append(story=story, text="The lamp flickered once and went out.")
    tree = studio.tree_save(project=world, title="At the door", scene="Night.", characters=[maren])
    generation_job = generation.story_generate(owner=user, story=story, mode="continue", params={"seed": 1})
    replies = generation.dialogue_generate(owner=user, tree=tree, character=maren, player_line="Is the lamp out?",
                                           parent=None, count=2, params={"seed": 1})
    GenerationJob.objects.filter(pk=replies.pk).update(state=GenerationJob.State.DONE,
                                                       candidates=["Aye, since dusk.", "Out, and cold."])
    ids = {
        "/api/v1/finance/runs/{id}/": run.pk,
        "/api/v1/models/datasets/{id}/": dataset.pk,
        "/api/v1/models/versions/{id}/": version.pk,
        "/api/v1/models/versions/{id}/activate/": version.pk,
        "/api/v1/models/jobs/{id}/": job.pk,
        "/api/v1/models/jobs/{id}/cancel/": job.pk,
        "/api/v1/stories/projects/{id}/stories/": world.pk,
        "/api/v1/stories/stories/{id}/": story.pk,
        "/api/v1/stories/stories/{id}/generate/": story.pk,
        "/api/v1/stories/trees/{id}/generate/": tree.pk,
        "/api/v1/stories/trees/{id}/export/{fmt}/": tree.pk,
        "/api/v1/stories/jobs/{id}/": generation_job.pk,
        "/api/v1/stories/jobs/{id}/cancel/": generation_job.pk,
        "/api/v1/stories/jobs/{id}/accept/": replies.pk,
    }
    SEEDED_IDS.clear()
    SEEDED_IDS.update(ids)
    return {"token": Token.objects.create(user=user).key, "ids": ids}


# Loaded from the running app when the module is collected, so each operation is its own test item.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application,
                                        config=SchemathesisConfig.from_dict(CONFIG)).include(path_regex="^/api/v1/")
# Filled by the `seeded` fixture of the test being run: schema path -> id of the seeded object it looks up.
SEEDED_IDS: dict[str, int] = {}


@schema.hook("flatmap_path_parameters")
def seeded_ids(context, path_parameters):
    # Mostly the seeded object, so the handler does real work; sometimes the generated id (the 404 path).
    seeded_id = SEEDED_IDS.get(context.operation.path)
    if seeded_id is None or "id" not in path_parameters:
        return st.just(path_parameters)
    return st.sampled_from([seeded_id, seeded_id, seeded_id, path_parameters["id"]]).map(
        lambda value: {**path_parameters, "id": value})


@hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
@schema.parametrize()
def test_every_operation_answers_as_its_schema_says(case, seeded):
    case.call_and_validate(headers={"Authorization": f"Token {seeded['token']}"}, checks=CHECKS)


def test_every_id_in_the_schema_has_a_seeded_object(seeded):
    """Each operation that looks an object up by {id} gets a seeded one: a new endpoint must be seeded above, or the
    fuzzing above would only ever see its 404."""
    by_id = {operation.path for operation in (result.ok() for result in schema.get_all_operations())
             if "{id}" in operation.path}
    assert by_id, "the schema lists no operation by id"
    assert by_id == set(seeded["ids"])
