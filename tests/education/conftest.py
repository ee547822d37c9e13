import pytest

from core.roles import Role
from education.models import Course


@pytest.fixture
def teacher(make_user):
    return make_user(Role.TEACHER, username="t_ada")


@pytest.fixture
def student(make_user):
    return make_user(Role.STUDENT, username="s_bo")


@pytest.fixture
def other_student(make_user):
    return make_user(Role.STUDENT, username="s_cy")


@pytest.fixture
def course(teacher, student):
    course = Course.objects.create(title="Writing 101", teacher=teacher)
    course.students.add(student)
    return course
