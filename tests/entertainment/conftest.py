import pytest

from core.roles import Role
from entertainment import services
from entertainment.models import LoreEntry, Project


@pytest.fixture
def writer(make_user):
    return make_user(Role.WRITER, username="ink-writer")


@pytest.fixture
def other_writer(make_user):
    return make_user(Role.WRITER, username="other-writer")


@pytest.fixture
def world(writer):
    project = Project.objects.create(owner=writer, title="Gull Rock", description="A lighthouse island.")
    LoreEntry.objects.create(project=project, title="Lighthouse", keys=["lighthouse"], insertion_order=1,
                             text="The lighthouse stands on Gull Rock.", can_trigger_others=True)
    LoreEntry.objects.create(project=project, title="Gull Rock", keys=["Gull Rock"], insertion_order=2,
                             text="Gull Rock is home to the keeper Maren.")
    return project


@pytest.fixture
def maren(world):
    return services.character_save(project=world, name="Maren", persona="The lighthouse keeper, sixty, wry.",
                                   speaking_style="Short sentences, sea words.", knowledge="The lamp's secrets.")


@pytest.fixture
def story(world):
    return services.story_save(project=world, title="The Dark Lamp", genre="mystery",
                               premise="The lamp goes dark on the stormiest night.", memory="Told by Maren.",
                               authors_note="Keep it eerie.")


@pytest.fixture
def tree(world, maren):
    return services.tree_save(project=world, title="At the door", scene="Night; rain on the glass.",
                              characters=[maren])


@pytest.fixture
def active_lm(db, tiny_lm_dir, mlcore_home):
    """The tiny random Llama as the active model of both entertainment tasks."""
    from mlcore import services as ml_services
    from mlcore.models import Family, Task

    versions = []
    for task in (Task.STORY, Task.DIALOGUE):
        version = ml_services.model_version_register(task=task, family=Family.CAUSAL_LM, base_spec=str(tiny_lm_dir))
        versions.append(ml_services.model_version_activate(version=version))
    return versions
