"""One small world holding an object of every owned kind, with one owner per role, for the access tests."""

from dataclasses import dataclass, field
from datetime import date, time

import pytest
from django.db import transaction
from django.utils import timezone

from core.roles import Role

# The identities a request can come from: anonymous, logged in without a role, and each role.
ANON, NOROLE = "anonymous", "no-role"
IDENTITIES = [ANON, NOROLE, *(role.value for role in Role)]


@dataclass
class World:
    users: dict = field(default_factory=dict)  # identity -> the user who owns that role's objects (None: anonymous)
    strangers: dict = field(default_factory=dict)  # role -> a user with that role who owns nothing
    pk: dict = field(default_factory=dict)  # object kind -> pk
    extra: dict = field(default_factory=dict)  # other url kwargs (symbols, sectors, tasks)


def _user(username, *roles):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username=username)  # no password: sessions come from force_login
    user.groups.set([Group.objects.get_or_create(name=role.value)[0] for role in roles])
    return user


@pytest.fixture(scope="module")
def _module_world(django_db_setup, django_db_blocker):
    """The world, built once per test module inside a transaction rolled back at the module's end.

    Each test's own `db` transaction nests inside it as a savepoint (what Django's TestCase.setUpTestData does), so a
    test that deletes or changes an object leaves the next test the world as built.
    """
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(_module_world, db):
    return _module_world


def _build_world() -> World:
    """Every owned object kind, owned by the user of the matching role (the teacher teaches the student)."""
    from education.models import Assignment, Course, Essay, EssayVersion, Grade, TutorMessage, TutorSession
    from education.services.material import material_create
    from entertainment import services as studio
    from entertainment.models import Character, GenerationJob, LoreEntry, Project
    from finance.models import Article, ArticleTicker, Company, IngestRun, PriceUpload, Source, TickerRedetectRun
    from finance.reports import report_generate, report_schedule_save
    from finance.watchlists import watchlist_save
    from mlcore.models import Dataset, Family, ModelVersion, Task, TrainingJob

    w = World()
    w.users[ANON] = None
    w.users[NOROLE] = _user("sec-norole")
    for role in Role:
        w.users[role.value] = _user(f"sec-{role.value}", role)
        w.strangers[role.value] = _user(f"sec-other-{role.value}", role)  # holds the role, owns nothing
    analyst, student, teacher = w.users["analyst"], w.users["student"], w.users["teacher"]
    writer, operator = w.users["writer"], w.users["operator"]

    # finance
    company = Company.objects.create(symbol="NRVB", name="Norvale Bank", sector="Financials", aliases=["Norvale"])
    source = Source.objects.create(name="Harbor Wire", kind=Source.Kind.FEED, feed_url="http://127.0.0.1:9/rss")
    article = Article.objects.create(source=source, title="Norvale profit rose", published_at=timezone.now(),
                                     content_hash="f" * 40)
    mention = ArticleTicker.objects.create(article=article, company=company, detected_by="alias", relevance=0.5)
    watchlist = watchlist_save(owner=analyst, name="Banks", symbols=["NRVB"])
    schedule = report_schedule_save(owner=analyst, watchlist=watchlist, frequency="weekly", time_of_day=time(7),
                                    tz="UTC", email=False)
    today = timezone.localdate()
    report = report_generate(watchlist=watchlist, start=date(today.year, 1, 1), end=today, schedule=schedule)
    run = IngestRun.objects.create(user=analyst, source=source, via=IngestRun.Via.CSV, filename="a.csv")
    prices = PriceUpload.objects.create(user=analyst, filename="p.csv")
    redetect = TickerRedetectRun.objects.create(company=company, user=analyst, days=30)
    w.pk.update(company=company.pk, source=source.pk, article=article.pk, mention=mention.pk,
                watchlist=watchlist.pk, schedule=schedule.pk, report=report.pk, run=run.pk, price_upload=prices.pk,
                redetect_run=redetect.pk)
    w.extra.update(symbol="NRVB", sector="Financials")

    # education
    course = Course.objects.create(title="Writing 101", teacher=teacher)
    course.students.add(student)
    assignment = Assignment.objects.create(
        course=course, title="Phones", prompt="Should schools ban phones?", score_min=1, score_max=6,
        rubric=[{"name": "Ideas", "description": "A clear position.", "lines": [{"score": 6, "text": "Clear."}]}],
        traits=["Ideas"])
    essay = Essay.objects.create(assignment=assignment, student=student, text="Phones distract students.")
    version = EssayVersion.objects.create(essay=essay, number=1, text=essay.text)
    grade = Grade.objects.create(version=version, score=3, raw_score=3.2, confidence=0.5)
    material = material_create(course=course, user=teacher, title="Thesis", kind="markdown", enqueue=False,
                               text="# Thesis\n\nA thesis statement states the main claim of an essay.")
    session = TutorSession.objects.create(course=course, student=student)
    message = TutorMessage.objects.create(session=session, question="What is a thesis?", state="answered",
                                          answer="The main claim.")
    w.pk.update(course=course.pk, assignment=assignment.pk, essay=essay.pk, grade=grade.pk, material=material.pk,
                session=session.pk, message=message.pk)

    # entertainment
    project = Project.objects.create(owner=writer, title="Gull Rock")
    lore = LoreEntry.objects.create(project=project, title="Lighthouse", keys=["lighthouse"], text="It stands.")
    character = Character.objects.create(project=project, name="Maren")
    story = studio.story_save(project=project, title="The keeper")
    segment = studio.segment_append(story=story, text="The lamp flickered.")
    tree = studio.tree_save(project=project, title="At the door")
    root = studio.node_add(tree=tree, speaker=character, text="Who knocks?")
    reply = studio.node_add(tree=tree, speaker=None, text="Me.", parent=root, choice_text="Answer")
    story_job = GenerationJob.objects.create(owner=writer, project=project, kind="story", mode="continue",
                                             story=story, state="done", parameters={"seed": 1})
    w.pk.update(project=project.pk, lore=lore.pk, character=character.pk, story=story.pk, segment=segment.pk,
                tree=tree.pk, node=reply.pk, choice=reply.choices_in.get().pk, story_job=story_job.pk)

    # mlcore (shared among operators: the registry and the ml queue are one team's)
    dataset = Dataset.objects.create(name="headlines", kind=Dataset.Kind.CLASSIFICATION, created_by=operator)
    model_version = ModelVersion.objects.create(task=Task.FINANCE_SENTIMENT, family=Family.CLASSIFIER,
                                                base_spec="x", name="seed")
    job = TrainingJob.objects.create(task=Task.FINANCE_SENTIMENT, dataset=dataset, created_by=operator,
                                     params={"epochs": 1})
    w.pk.update(dataset=dataset.pk, version=model_version.pk, training_job=job.pk)
    w.extra.update(task=Task.FINANCE_SENTIMENT.value)
    return w
